"""The ACE-Step v1 time estimate: the ETA a user sees before the first generation has been
measured on their machine, and how the loop's guided calls are counted for it."""

from __future__ import annotations

import pytest

from lofi_daemon.backends.ace_step.backend import CostModel
from lofi_daemon.backends.ace_step.pipeline import frame_length, guided_calls, transformer_calls


def test_guided_calls_are_the_loop_indices_the_official_pipeline_guided(golden, e2e_case):
    case = golden.case(e2e_case)
    p = case["effective_call_parameters"]
    observed = case["derived"]["guided_loop_indices_observed"]
    assert guided_calls(p["infer_step"], p["scheduler_type"], p["guidance_scale"], p["guidance_interval"]) == len(observed)


def test_no_guidance_means_no_guided_calls():
    assert guided_calls(27, "euler", 1.0, 0.5) == 0
    assert guided_calls(27, "euler", 15.0, 0.0) == 0
    assert guided_calls(27, "euler", 15.0, 1.0) == 27


def _default_minutes(seconds: float, threads: int) -> float:
    frames = frame_length(seconds)
    calls = transformer_calls(27, "euler")
    guided = guided_calls(27, "euler", 15.0, 0.5)
    return sum(CostModel("cpu", threads).estimate(frames, calls, guided).values()) / 60


@pytest.mark.parametrize("seconds, threads, measured_minutes", [
    # Measured on an idle 2-core AVX2 machine, full-size float32 (docs/benchmarks.md,
    # "A whole 120 s / 27-step generation on this CPU"): 13 unguided + 14 guided calls + decode.
    (120.0, 2, 38.0),
    (30.0, 1, 18.4),
])
def test_the_first_cpu_eta_is_near_what_the_benchmarks_measured(seconds, threads, measured_minutes):
    # Before the first generation corrects it, the ETA must not promise a quarter of the wait.
    assert 0.75 * measured_minutes <= _default_minutes(seconds, threads) <= 1.33 * measured_minutes


def test_more_threads_shorten_the_cpu_estimate_but_not_in_proportion():
    one, two = _default_minutes(120.0, 1), _default_minutes(120.0, 2)
    assert one / 2 < two < one


def test_a_measured_run_moves_the_next_estimate_halfway():
    model = CostModel("cpu", 2)
    frames, calls, guided = frame_length(30.0), 27, 14
    before = model.estimate(frames, calls, guided)
    model.learn({phase: 2 * seconds for phase, seconds in before.items()}, frames, calls, guided)
    after = model.estimate(frames, calls, guided)
    for phase in before:
        assert after[phase] == pytest.approx(1.5 * before[phase])
