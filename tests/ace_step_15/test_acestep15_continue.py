"""Continuing a track on the tiny model: the repaint condition the DiT gets, the spliced file, its loudness."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from acestep15_helpers import Recorder, make_backend

from lofi_daemon.backends.ace_step_15.decode import TARGET_PEAK
from lofi_daemon.backends.ace_step_15.extend import CEILING, Head, Splicer, soft_limit
from lofi_daemon.backends.base import Continuation, GenerationRequest
from lofi_daemon.cancel import CancelToken
from lofi_daemon.device import DevicePlan
from lofi_daemon.errors import InvalidParams, JobCancelled

PROMPT = "lo-fi hip hop, mellow piano, vinyl crackle"
HOP = 1920
C = 8  # the tiny model's latent channels


@pytest.fixture(scope="module")
def backend(installed_cache):
    b = make_backend(installed_cache)
    b.load(DevicePlan(preference="cpu"))
    yield b
    b.unload()


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A 7 s 48 kHz 16-bit file, as the library writes them: noise under a slow sine."""
    rng = np.random.default_rng(1)
    t = np.arange(7 * 48000) / 48000
    audio = (0.3 * np.sin(2 * np.pi * 220 * t) + rng.uniform(-0.2, 0.2, (2, t.size))).astype(np.float32)
    path = tmp_path_factory.mktemp("src") / "source.wav"
    sf.write(str(path), audio.T, 48000, subtype="PCM_16")
    samples, _ = sf.read(str(path), dtype="float32", always_2d=True)
    return path, np.ascontiguousarray(samples.T)


def _request(path, duration=10.0, seed=5, steps=3):
    return GenerationRequest(prompt=PROMPT, duration_sec=duration, seed=seed, params={"inference_steps": steps},
                             continue_from=Continuation(track_id="t-source", path=str(path)))


def test_the_source_tail_reaches_the_dit_as_kept_latents_and_the_rest_as_the_repaint_span(backend, source):
    path, samples = source
    seen = []
    hook = backend._pipe.transformer.register_forward_pre_hook(
        lambda _m, _a, kw: seen.append(kw["context_latents"].clone()), with_kwargs=True)
    decoded = []
    vae_hook = backend._pipe.vae.decoder.register_forward_pre_hook(lambda _m, a: decoded.append(a[0].clone()))
    try:
        audio = backend.generate(_request(path), Recorder(), CancelToken())
    finally:
        hook.remove()
        vae_hook.remove()
    kept = audio.metadata["kept_latents"]
    assert kept == 5 * 48000 // HOP == 125  # half of 10 s, in whole latents
    tail = torch.from_numpy(samples[:, -kept * HOP:]).unsqueeze(0)
    with torch.no_grad():
        expected = backend._pipe.vae.encode(tail).latent_dist.mean.transpose(1, 2)
    context = seen[0]
    assert context.shape == (1, 250, 2 * C) and len(seen) == 3  # one DiT call per step, same context
    assert torch.equal(context[:, :kept, :C], expected)  # the source's latents, kept
    assert torch.equal(context[:, kept:, :C], backend._pipe.condition_encoder.silence_latent[:, kept:250])
    assert context[0, :kept, C:].eq(0).all() and context[0, kept:, C:].eq(1).all()  # 0 keep, 1 generate
    # What is decoded keeps the source's latents exactly where they were kept.
    assert torch.equal(decoded[0].transpose(1, 2)[:, :kept], expected)


def test_the_file_is_the_source_tail_then_a_crossfade_into_the_decode_ending_at_join_frame(backend, source):
    path, samples = source
    audio = backend.generate(_request(path), Recorder(), CancelToken())
    out, meta = audio.samples, audio.metadata
    join = meta["join_frame"]
    assert (meta["continues"], join, out.shape) == ("t-source", 125 * HOP, (2, 250 * HOP))
    fade = 12000  # 0.25 s
    np.testing.assert_array_equal(out[:, :join - fade], samples[:, -join:-fade])  # the source's own samples
    assert not np.array_equal(out[:, join - fade:join], samples[:, -fade:])  # the decode comes in before the join
    assert np.abs(out).max() < 1.0


def test_the_same_seed_and_source_give_the_same_samples_another_seed_does_not(backend, source):
    path, _ = source
    a = backend.generate(_request(path, seed=9), Recorder(), CancelToken()).samples
    b = backend.generate(_request(path, seed=9), Recorder(), CancelToken()).samples
    c = backend.generate(_request(path, seed=10), Recorder(), CancelToken()).samples
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.fixture
def model_calls(backend):
    calls = []
    handles = [backend._pipe.transformer.register_forward_pre_hook(lambda *_: calls.append("dit")),
               backend._pipe.vae.decoder.register_forward_pre_hook(lambda *_: calls.append("decode"))]
    yield calls
    for h in handles:
        h.remove()


def test_an_unreadable_or_too_short_source_is_invalid_params_before_any_model_work(backend, tmp_path, model_calls):
    garbage = tmp_path / "garbage.flac"
    garbage.write_bytes(b"fLaC" + bytes(range(256)) * 8)
    short = tmp_path / "short.wav"
    sf.write(str(short), np.zeros((int(1.5 * 48000), 2), np.float32), 48000, subtype="PCM_16")
    for path, words in ((garbage, "cannot read"), (short, "too short"), (tmp_path / "missing.wav", "cannot read")):
        with pytest.raises(InvalidParams) as err:
            backend.generate(_request(path), Recorder(), CancelToken())
        assert words in err.value.message and err.value.facts["field"] == "continue_from"
        assert "continue_from" in err.value.hint
    assert model_calls == []


def test_a_cancel_during_a_continuations_denoising_stops_there_without_decoding(backend, source, model_calls):
    path, _ = source
    token = CancelToken()

    def cancel_at_step_2(phase, current, total):
        if phase == "diffusion" and current == 2:
            token.cancel()

    with pytest.raises(JobCancelled) as err:
        backend.generate(_request(path, steps=6), Recorder(cancel_at_step_2), token)
    assert (err.value.at_step, err.value.total_steps) == (2, 6)
    assert "decode" not in model_calls and model_calls.count("dit") == 2


def test_the_limiter_leaves_everything_up_to_minus_1_dbfs_alone_and_never_reaches_full_scale():
    x = np.array([0.0, 0.5, -TARGET_PEAK, 0.95, -1.5, 3.0, 1e6], np.float32)
    y = soft_limit(x)
    assert np.array_equal(y[:3], x[:3])
    assert np.all(np.abs(y[3:]) > TARGET_PEAK) and np.all(np.abs(y[3:]) <= CEILING) and np.all(np.sign(y) == np.sign(x))
    assert np.all(np.diff(soft_limit(np.linspace(0, 5, 1000, dtype=np.float32))) >= 0)  # monotone: no fold-back


@pytest.mark.parametrize("cuts", [[250], [30, 70, 150], [95, 1, 4, 150]])
def test_the_splice_is_the_same_however_the_decode_is_cut_into_windows(cuts):
    rng = np.random.default_rng(2)
    head = Head(samples=rng.uniform(-0.5, 0.5, (2, 100)).astype(np.float32))
    decoded = rng.uniform(-1.2, 1.2, (2, 250)).astype(np.float32)
    whole = Splicer(head, crossfade_sec=20 / 48000).window(decoded.copy())
    splicer, pieces, at = Splicer(head, crossfade_sec=20 / 48000), [], 0
    for n in cuts:
        pieces.append(splicer.window(decoded[:, at:at + n].copy()))
        at += n
    assert np.array_equal(np.concatenate(pieces, axis=-1), whole)
    assert np.array_equal(whole[:, :80], head.samples[:, :80])  # the head's own samples
    assert np.array_equal(whole[:, 100:], soft_limit(decoded[:, 100:]))  # the (limited) decode from join_frame
    limited = soft_limit(decoded[:, 80:100])
    weight = (whole[:, 80:100] - limited) / (head.samples[:, 80:100] - limited)
    assert np.allclose(weight, (20 - np.arange(20) - 0.5) / 20, atol=1e-4)  # linear, head -> decode
