"""The sampler against the official loop: schedule, sample length, and the ping-pong update."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from sa3_fixtures import golden  # noqa: E402

from lofi_daemon.backends.stable_audio_3.sampler import latent_length, pingpong, sigma_schedule  # noqa: E402


@pytest.mark.parametrize("steps", [1, 4, 8, 16])
def test_the_sigma_schedule_equals_the_official_one(steps):
    official = golden()[f"sampler.sigmas.{steps}"]
    ours = torch.tensor(sigma_schedule(steps), dtype=official.dtype)
    assert torch.equal(ours, official)
    assert ours[0] == 1.0 and ours[-1] == 0.0


def test_the_latent_length_has_six_seconds_of_headroom_even_and_capped_like_the_official():
    durations = golden()["sampler.durations"].tolist()
    official = [int(s) // 4096 for s in golden()["sampler.sample_sizes"].tolist()]
    ours = [latent_length(d) for d in durations]
    assert ours == official
    assert all(n % 2 == 0 for n in ours)
    assert latent_length(120.0) == 1292  # the cap: 120 s leaves no headroom


def test_pingpong_with_the_official_noise_gives_the_official_result():
    g = golden()
    noises = g["sampler.noises"]
    seen_t = []

    def velocity(x, t):
        seen_t.append(float(t[0]))
        return torch.tanh(x) * t.view(-1, 1, 1) + 0.1 * x

    out = pingpong(velocity, g["sampler.x"].clone(), g["sampler.sigmas.8"].tolist(),
                   noise=lambda i: noises[i])
    assert torch.equal(out, g["sampler.out"])
    assert seen_t == g["sampler.sigmas.8"][:-1].tolist()  # raw t in [0, 1], one call per step


def test_a_stop_before_a_step_means_that_step_never_calls_the_model():
    calls = []

    def stop_at_third(i):
        if i == 2:
            raise RuntimeError("cancelled")

    with pytest.raises(RuntimeError, match="cancelled"):
        pingpong(lambda x, t: calls.append(1) or x, torch.zeros(1, 2, 2), sigma_schedule(8),
                 noise=lambda i: torch.zeros(1, 2, 2), before_step=stop_at_third)
    assert len(calls) == 2
