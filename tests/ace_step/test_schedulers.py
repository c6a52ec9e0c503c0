"""The euler / heun / pingpong samplers against the official schedules and denoising steps."""

from __future__ import annotations

import math

import pytest
import torch

from lofi_daemon.backends.ace_step.schedulers import SCHEDULERS, make_scheduler, rescale_omega
from lofi_daemon.errors import InvalidParams


def _schedule_entries(golden):
    """(scheduler, steps) for every entry of unit_schedules in the manifest."""
    entries = set()
    for name in golden.file_entry("unit_schedules")["tensors"]:
        scheduler, steps, _ = name.split("_")
        entries.add((scheduler, int(steps)))
    return sorted(entries)


def test_every_schedule_in_the_manifest_matches_the_official_one(golden):
    ref = golden.tensors("unit_schedules")
    entries = _schedule_entries(golden)
    assert {s for s, _ in entries} == set(SCHEDULERS) and len(entries) >= 24
    for scheduler_name, steps in entries:
        scheduler = make_scheduler(scheduler_name, shift=3.0, num_train_timesteps=1000)
        scheduler.set_timesteps(steps, "cpu")
        prefix = f"{scheduler_name}_{steps}"
        golden.check("unit_schedules", f"{prefix}_timesteps", scheduler.timesteps, ref[f"{prefix}_timesteps"])
        golden.check("unit_schedules", f"{prefix}_sigmas", scheduler.sigmas, ref[f"{prefix}_sigmas"])


def test_heun_makes_two_n_minus_one_model_calls():
    for steps in (1, 2, 8, 27):
        scheduler = make_scheduler("heun")
        scheduler.set_timesteps(steps)
        assert len(scheduler.timesteps) == 2 * steps - 1
        assert len(scheduler.sigmas) == 2 * steps


def test_stepping_with_the_recorded_velocities_reproduces_the_official_latents(golden, e2e_case):
    case = e2e_case  # every case in the manifest (conftest parametrizes)
    """Seed -> initial noise -> every scheduler step, chained on our own latents.

    The velocities are the official model outputs of that case, so this isolates the
    scheduler (and, for pingpong, its per-step noise drawn from the seed's generator).
    """
    params = golden.case(case)["effective_call_parameters"]
    key = f"e2e_{case}"
    ref = golden.tensors(key)
    scheduler = make_scheduler(params["scheduler_type"])
    scheduler.set_timesteps(params["infer_step"], "cpu")
    golden.check(key, "timesteps", scheduler.timesteps, ref["timesteps"])
    golden.check(key, "sigmas", scheduler.sigmas, ref["sigmas"])

    generator = torch.Generator("cpu").manual_seed(params["manual_seeds"])
    frames = golden.case(case)["derived"]["frame_length"]
    latents = torch.randn((1, 8, 16, frames), generator=generator, dtype=torch.float32)
    golden.check(key, "initial_noise", latents, ref["initial_noise"])

    outputs = []
    for i, t in enumerate(scheduler.timesteps):
        latents = scheduler.step(ref["step_model_output"][i], t, latents, omega=params["omega_scale"], generator=generator)
        outputs.append(latents)
    golden.check(key, "step_timestep", scheduler.timesteps, ref["step_timestep"])
    golden.check(key, "step_latents_out", torch.stack(outputs), ref["step_latents_out"])
    golden.check(key, "final_latents", latents, ref["final_latents"])


def test_omega_is_squashed_like_the_official_code(golden):
    derived = golden.case("euler_apg")["derived"]
    assert rescale_omega(golden.case("euler_apg")["effective_call_parameters"]["omega_scale"]) == pytest.approx(
        derived["omega_after_logistic"], abs=1e-12
    )
    assert rescale_omega(0.0) == 1.0
    assert 0.9 <= rescale_omega(-1e5) < rescale_omega(-1.0) < rescale_omega(1.0) < rescale_omega(1e5) <= 1.1


def test_euler_omega_scales_the_step_around_its_mean():
    torch.manual_seed(0)
    v, x = torch.randn(1, 8, 16, 5), torch.randn(1, 8, 16, 5)
    plain, shifted = make_scheduler("euler"), make_scheduler("euler")
    plain.set_timesteps(4)
    shifted.set_timesteps(4)
    t = plain.timesteps[0]
    dx_plain = plain.step(v, t, x, omega=0.0) - x  # omega 0 -> factor 1.0: a plain Euler step
    dx_shifted = shifted.step(v, t, x, omega=10.0) - x
    expected = (plain.sigmas[1] - plain.sigmas[0]) * v
    assert torch.allclose(dx_plain, expected, atol=1e-6)
    factor = rescale_omega(10.0)
    assert torch.allclose(dx_shifted - dx_shifted.mean(), (expected - expected.mean()) * factor, atol=1e-5)
    assert dx_shifted.mean().item() == pytest.approx(expected.mean().item(), abs=1e-6)


def test_pingpong_draws_one_latent_of_noise_per_step_and_ignores_omega():
    v, x = torch.randn(1, 8, 16, 7), torch.randn(1, 8, 16, 7)
    a, b = make_scheduler("pingpong"), make_scheduler("pingpong")
    a.set_timesteps(3)
    b.set_timesteps(3)
    ga, gb = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    out_a = a.step(v, a.timesteps[0], x, omega=10.0, generator=ga)
    out_b = b.step(v, b.timesteps[0], x, omega=0.0, generator=gb)
    assert torch.equal(out_a, out_b)
    # The generator advanced by exactly one draw of the latent's shape.
    reference = torch.Generator().manual_seed(7)
    torch.empty_like(x).normal_(generator=reference)
    assert torch.equal(torch.randn(3, generator=ga), torch.randn(3, generator=reference))


def test_bfloat16_velocities_give_bfloat16_latents_computed_in_float32():
    scheduler = make_scheduler("heun")
    scheduler.set_timesteps(2)
    x = torch.randn(1, 8, 16, 4)
    v = torch.randn(1, 8, 16, 4, dtype=torch.bfloat16)
    out = scheduler.step(v, scheduler.timesteps[0], x, omega=10.0)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


def test_set_timesteps_starts_over_and_overstepping_is_an_error():
    scheduler = make_scheduler("euler")
    scheduler.set_timesteps(2)
    x = v = torch.zeros(1, 8, 16, 2)
    for t in scheduler.timesteps:
        scheduler.step(v, t, x)
    with pytest.raises(RuntimeError, match="past its 2 timesteps"):
        scheduler.step(v, scheduler.timesteps[-1], x)
    scheduler.set_timesteps(2)
    assert scheduler.step_index == 0
    scheduler.step(v, scheduler.timesteps[0], x)


def test_unknown_scheduler_and_bad_step_counts_are_rejected_with_a_hint():
    with pytest.raises(InvalidParams) as err:
        make_scheduler("ddim")
    assert "euler" in err.value.hint and err.value.facts["field"] == "scheduler"
    for bad in (0, -3, 2.5):
        with pytest.raises(InvalidParams):
            make_scheduler("euler").set_timesteps(bad)
    assert math.isfinite(make_scheduler("pingpong", shift=1.0).sigma_min)
