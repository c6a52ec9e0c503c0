"""A whole track on the tiny converted model: length, seeds, progress, cancel, continuation."""

from __future__ import annotations

import dataclasses

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from sa3_fixtures import checkpoint  # noqa: E402

from lofi_daemon.backends.stable_audio_3.pipeline import SAMPLE_RATE, Parts, generate  # noqa: E402
from lofi_daemon.cancel import CancelToken  # noqa: E402
from lofi_daemon.errors import JobCancelled  # noqa: E402

DURATION = 0.05  # 2205 samples = 34.5 latents of the tiny SAME-S (64 samples each)


@pytest.fixture(scope="module")
def parts():
    ck = checkpoint()
    return Parts(dit=ck.build_dit(), duration_embedder=ck.build_duration_embedder(),
                 same_s=ck.build_same_s(), headroom=0.02)


def text():
    hidden = torch.randn(1, 5, 32, generator=torch.Generator().manual_seed(1))
    return hidden, torch.tensor([[True, True, True, False, False]])


def run(parts, seed=3, cancel=None, report=lambda *a: None, **kw):
    return generate(parts, text, duration=DURATION, seed=seed, steps=4, cancel=cancel or CancelToken(),
                    report=report, window=8, **kw)


def test_a_track_has_the_asked_length_in_stereo_within_full_scale(parts):
    track = run(parts)
    assert track.audio.shape == (2, int(DURATION * SAMPLE_RATE))
    assert track.audio.abs().max() <= 1.0 and track.audio.std() > 0
    assert track.latents.shape[-1] % 2 == 0


def test_the_same_seed_gives_the_same_track_and_another_seed_another(parts):
    a, b, c = run(parts, seed=5), run(parts, seed=5), run(parts, seed=6)
    assert torch.equal(a.audio, b.audio)
    assert not torch.equal(a.audio, c.audio)


def test_progress_goes_through_every_step_then_every_decode_window_in_order(parts):
    seen = []
    run(parts, report=lambda phase, done, total: seen.append((phase, done, total)))
    diffusion = [s for s in seen if s[0] == "diffusion"]
    decode = [s for s in seen if s[0] == "decode"]
    assert diffusion == [("diffusion", i, 4) for i in range(1, 5)]
    assert seen == diffusion + decode and decode[-1][1] == decode[-1][2] and len(decode) >= 2


def test_cancel_during_a_step_stops_before_the_next_one_and_nothing_is_decoded(parts):
    cancel, seen = CancelToken(), []

    def report(phase, done, total):
        seen.append(phase)
        if phase == "diffusion" and done == 2:
            cancel.cancel()

    with pytest.raises(JobCancelled):
        run(parts, cancel=cancel, report=report)
    assert seen == ["diffusion", "diffusion"]


def test_a_continuation_begins_with_the_kept_latents(parts):
    first = run(parts, seed=9)
    tail = first.latents[..., 10:18]
    second = run(parts, seed=10, keep=tail)
    assert torch.equal(second.latents[..., :8], tail)
    assert not torch.equal(second.latents[..., 8:16], first.latents[..., 18:26])


def test_one_pass_decode_of_the_latents_gives_the_same_audio(parts):
    track = run(parts)
    with torch.no_grad():
        whole = parts.same_s.decode(track.latents)[0, :, : track.audio.shape[-1]].clamp(-1, 1)
    assert torch.equal(whole, track.audio)


def test_the_decoded_windows_handed_out_as_they_come_join_into_exactly_the_track(parts):
    windows = []
    track = run(parts, on_window=lambda audio: windows.append(audio.clone()))
    assert len(windows) > 1  # the tiny track crosses several decode windows
    assert torch.equal(torch.cat(windows, dim=-1), track.audio)  # play-while-decoding hears the file's samples
