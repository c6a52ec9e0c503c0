"""APG and CFG guidance, the guidance window and its decay, against the official references."""

from __future__ import annotations

import pytest
import torch

from lofi_daemon.backends.ace_step.guidance import (
    MomentumBuffer,
    apg_forward,
    cfg_forward,
    guidance_scale_at,
    guidance_window,
)

DETAILED_CASES = ["euler_apg", "pingpong_cfg", "euler_apg_instrumental_tag"]


def test_four_apg_calls_sharing_one_momentum_buffer_match_the_official_ones(golden):
    info = golden.file_entry("unit_guidance")["info"]
    ref = golden.tensors("unit_guidance")
    buffer = MomentumBuffer()
    for i, scale in enumerate(info["apg_guidance_scales"]):
        out = apg_forward(ref[f"apg{i}_in_cond"], ref[f"apg{i}_in_uncond"], scale, buffer)
        golden.check("unit_guidance", f"apg{i}_out", out, ref[f"apg{i}_out"])


def test_cfg_matches_the_official_one(golden):
    info = golden.file_entry("unit_guidance")["info"]
    ref = golden.tensors("unit_guidance")
    for i, strength in enumerate(info["cfg_strengths"]):
        out = cfg_forward(ref[f"apg{i}_in_cond"], ref[f"apg{i}_in_uncond"], strength)
        golden.check("unit_guidance", f"cfg{i}_out", out, ref[f"cfg{i}_out"])


@pytest.mark.parametrize("case", DETAILED_CASES)
def test_guided_velocities_of_a_whole_generation_match(golden, case):
    """Recorded cond/uncond predictions -> the velocity handed to the scheduler, every step."""
    entry = golden.case(case)
    params, derived = entry["effective_call_parameters"], entry["derived"]
    key = f"e2e_{case}"
    ref = golden.tensors(key)

    start, end = guidance_window(params["infer_step"], params["guidance_interval"])
    assert (start, end) == (derived["start_idx"], derived["end_idx"])
    guided = [i for i in range(derived["loop_iterations"]) if start <= i < end]
    golden.check(key, "guided_loop_indices", torch.tensor(guided), ref["guided_loop_indices"])

    buffer = MomentumBuffer()
    velocities = []
    for i in range(derived["loop_iterations"]):
        cond = ref["step_pred_cond"][i]
        if i in guided:
            uncond = ref["guided_pred_uncond"][guided.index(i)]
            scale = guidance_scale_at(
                i, start, end, params["guidance_scale"], params["min_guidance_scale"], params["guidance_interval_decay"]
            )
            assert scale == derived["guidance_scale_per_loop_index"][i]
            if params["cfg_type"] == "apg":
                velocities.append(apg_forward(cond, uncond, scale, buffer))
            else:
                velocities.append(cfg_forward(cond, uncond, scale))
        else:
            assert derived["guidance_scale_per_loop_index"][i] is None
            velocities.append(cond)
    golden.check(key, "step_model_output", torch.stack(velocities), ref["step_model_output"])


def test_heun_is_guided_by_the_window_of_the_requested_steps_not_its_loop(golden):
    derived = golden.case("heun_apg")["derived"]
    params = golden.case("heun_apg")["effective_call_parameters"]
    start, end = guidance_window(params["infer_step"], params["guidance_interval"])
    assert derived["loop_iterations"] == 2 * params["infer_step"] - 1
    assert list(range(start, end)) == derived["guided_loop_indices_observed"]


def test_guidance_window_covers_the_middle_fraction_of_the_steps():
    assert guidance_window(60, 0.5) == (15, 45)
    assert guidance_window(27, 1.0) == (0, 27)
    assert guidance_window(27, 0.0) == (13, 13)  # empty: no step is guided


def test_decay_lowers_the_scale_linearly_to_the_minimum_across_the_window():
    start, end = guidance_window(60, 0.5)
    scales = [guidance_scale_at(i, start, end, 15.0, 3.0, 1.0) for i in range(start, end)]
    assert scales[0] == 15.0 and scales[-1] == pytest.approx(3.0)
    steps = [a - b for a, b in zip(scales, scales[1:])]
    assert all(s == pytest.approx(12.0 / (end - start - 1)) for s in steps)
    half = [guidance_scale_at(i, start, end, 15.0, 3.0, 0.5) for i in range(start, end)]
    assert half[-1] == pytest.approx(9.0)
    assert guidance_scale_at(20, start, end, 15.0, 3.0, 0.0) == 15.0


def test_a_one_step_window_with_decay_keeps_the_full_scale_instead_of_dividing_by_zero():
    start, end = guidance_window(2, 0.5)
    assert end - start == 1
    assert guidance_scale_at(start, start, end, 15.0, 3.0, 1.0) == 15.0


def test_apg_only_applies_the_part_of_the_difference_orthogonal_to_cond():
    torch.manual_seed(1)
    cond = torch.randn(2, 8, 16, 9)
    uncond = cond - 0.01 * torch.randn(2, 8, 16, 9)  # small difference: the 2.5 norm clip is inactive
    out = apg_forward(cond, uncond, 5.0)
    update = (out - cond).double()
    # orthogonal to cond per batch item and channel ...
    cosine = (update * cond.double()).sum(dim=(-1, -2)) / (
        update.norm(dim=(-1, -2)) * cond.double().norm(dim=(-1, -2))
    )
    assert cosine.abs().max() < 1e-4
    # ... and equal to (g - 1) x the orthogonal part of (cond - uncond)
    diff = (cond - uncond).double()
    c = cond.double() / cond.double().norm(dim=(-1, -2), keepdim=True)
    orth = diff - (diff * c).sum(dim=(-1, -2), keepdim=True) * c
    assert torch.allclose(update, 4.0 * orth, atol=1e-6)


def test_apg_clips_large_differences_to_norm_two_and_a_half():
    torch.manual_seed(2)
    cond = torch.randn(1, 8, 16, 9)
    uncond = cond + 100 * torch.randn(1, 8, 16, 9)
    update = apg_forward(cond, uncond, 2.0) - cond  # g - 1 = 1: the update is the clipped orthogonal part
    assert update.norm(dim=(-1, -2)).max() <= 2.5 + 1e-5


def test_momentum_buffer_keeps_a_negative_momentum_running_average():
    buffer = MomentumBuffer()
    a, b = torch.ones(3), torch.full((3,), 2.0)
    assert torch.equal(buffer.update(a), a)
    assert torch.allclose(buffer.update(b), b - 0.75 * a)
