"""Continuing a track with a loaded tiny MusicGen: the prompt, the join, progress, cancel, bad sources."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from musicgen_helpers import RecordingProgress
from lofi_daemon.backends.base import Continuation, GenerationRequest
from lofi_daemon.backends.musicgen.continuation import JOIN_FADE_SEC
from lofi_daemon.backends.musicgen.lengths import TokenGrid
from lofi_daemon.cancel import CancelToken
from lofi_daemon.errors import InvalidParams, JobCancelled

RATE = 48_000
GRID = TokenGrid(sample_rate=32_000, hop_length=640, codebooks_per_channel=4)


def write_source(path, seconds=4.0, *, freqs=(220.0, 330.0), rate=RATE, subtype="PCM_16", seed=0):
    """A stereo 'track': two tones plus a little noise, ending in a 5 ms fade like a library file."""
    n = round(seconds * rate)
    t = np.arange(n) / rate
    noise = np.random.default_rng(seed).normal(0, 0.02, (2, n))
    audio = np.stack([0.3 * np.sin(2 * np.pi * freqs[0] * t), 0.3 * np.sin(2 * np.pi * freqs[1] * t)]) + noise
    fade = round(0.005 * rate)
    audio[:, -fade:] *= np.sin(np.linspace(np.pi / 2, 0, fade)) ** 2
    sf.write(path, audio.T.astype(np.float32), rate, subtype=subtype)
    return path


def request(backend, source, seconds=6.0, seed=7, track_id="src", **params):
    return GenerationRequest("lofi hip hop, dusty piano", seconds, seed, backend.capabilities().resolve_params(params),
                             continue_from=Continuation(track_id, str(source)))


def run(backend, req, progress=None, cancel=None):
    return backend.generate(req, progress or RecordingProgress(), cancel or CancelToken())


def read48(path):
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    assert rate == RATE
    return data.T


def test_the_prompt_is_a_third_of_the_track_at_most_10_s_and_never_more_than_the_source():
    assert GRID.prompt_frames(30.0, 120.0) == 500  # 10 s
    assert GRID.prompt_frames(6.0, 120.0) == 100  # 2 s
    assert GRID.prompt_frames(7.33, 120.0) == 122  # whole frames, rounded down
    assert GRID.prompt_frames(30.0, 3.5) == 175  # the whole of a short source
    assert GRID.min_prompt_frames == 50
    assert GRID.new_tokens(GRID.frames_for(30.0), 500) == 1003  # 1503 steps, 500 of them given


def test_a_continuation_begins_with_the_sources_own_last_seconds(loaded_backend, tmp_path):
    source = write_source(tmp_path / "src.wav", 4.0)
    audio = run(loaded_backend, request(loaded_backend, source, 6.0))
    meta = audio.metadata
    assert audio.sample_rate == RATE and audio.samples.shape == (2, 6 * RATE)
    assert meta["continues"] == "src" and meta["prompt_frames"] == 100 and meta["prompt_sec"] == 2.0
    join = meta["join_frame"]
    assert join == 100 * 960 == 2 * RATE
    # Bit for bit the source's samples: the new file starts exactly where the old one stands.
    np.testing.assert_array_equal(audio.samples[:, :join], read48(source)[:, -join:])
    # Generated tokens: 6 s = 300 frames + 3 delay steps, of which the 100 prompt frames are given.
    assert meta["tokens"] == 203 and meta["frames"] == 300


def test_right_after_the_join_the_old_tail_is_mirrored_and_fades_into_the_models_music(loaded_backend, tmp_path):
    source = read48(write_source(tmp_path / "src.wav", 4.0))
    out = run(loaded_backend, request(loaded_backend, tmp_path / "src.wav", 6.0)).samples
    join, fade = 2 * RATE, round(JOIN_FADE_SEC * RATE)
    # What the radio plays after the old track's last sample starts from that sample's neighbour
    # (the waveform turns back on itself instead of jumping to unrelated audio)...
    np.testing.assert_array_equal(out[:, join], source[:, -2])
    heard = np.concatenate([source, out[:, join:]], axis=1)
    steps = np.abs(np.diff(heard, axis=1))
    at_join = steps[:, source.shape[1] - 5:source.shape[1] + 5].max()
    assert at_join <= steps[:, :source.shape[1]].max()  # no step larger than the source's own
    # ... and after the fade it is the model's music, not the source played backwards.
    mirrored_further = source[:, -2 - fade - np.arange(RATE // 10)]
    assert not np.allclose(out[:, join + fade:join + fade + RATE // 10], mirrored_further, atol=1e-3)


def test_the_prompt_shapes_the_new_part_and_plain_tracks_stay_at_32k(loaded_backend, tmp_path):
    low = write_source(tmp_path / "low.wav", 4.0, freqs=(110.0, 165.0))
    high = write_source(tmp_path / "high.wav", 4.0, freqs=(880.0, 1320.0), seed=1)
    a = run(loaded_backend, request(loaded_backend, low, 6.0, seed=3)).samples
    b = run(loaded_backend, request(loaded_backend, high, 6.0, seed=3)).samples
    join = 2 * RATE + round(JOIN_FADE_SEC * RATE)
    assert not np.allclose(a[:, join:], b[:, join:], atol=1e-4)
    plain = GenerationRequest("lofi hip hop, dusty piano", 6.0, 3, loaded_backend.capabilities().resolve_params({}))
    assert run(loaded_backend, plain).samples.shape == (2, 6 * 32_000)  # plain tracks stay at 32 kHz


def test_same_seed_and_source_give_bit_identical_audio(loaded_backend, tmp_path):
    source = write_source(tmp_path / "src.wav", 4.0)
    first = run(loaded_backend, request(loaded_backend, source, 5.0, seed=11)).samples
    run(loaded_backend, request(loaded_backend, source, 5.0, seed=12))  # the global RNG moves in between
    again = run(loaded_backend, request(loaded_backend, source, 5.0, seed=11)).samples
    assert first.tobytes() == again.tobytes()


def test_progress_counts_only_generated_tokens_and_plans_the_prompts_encode_and_prefill(loaded_backend, tmp_path):
    source = write_source(tmp_path / "src.wav", 4.0)
    progress = RecordingProgress()
    audio = run(loaded_backend, request(loaded_backend, source, 6.0), progress)
    assert [name for name, _ in progress.phases] == ["encode", "text", "prefill", "tokens", "decode"]
    assert dict(progress.phases)["tokens"] == audio.metadata["tokens"] == 203
    assert progress.updates[:2] == [("encode", 0, 1), ("encode", 1, 1)]
    assert progress.tokens() == list(range(1, 204))
    assert not [u for u in progress.updates if u[0] == "prefill"]  # the first token ends the prefill
    percents = progress.percents()
    assert all(b >= a for a, b in zip(percents, percents[1:])) and percents[-1] == pytest.approx(100.0)


def test_cancel_during_a_continuation_stops_within_one_token(loaded_backend, tmp_path):
    source = write_source(tmp_path / "src.wav", 4.0)
    cancel = CancelToken()

    def cancel_at_token_20(phase, current, total):
        if phase == "tokens" and current == 20:
            cancel.cancel()

    progress = RecordingProgress(on_update=cancel_at_token_20)
    with pytest.raises(JobCancelled) as stopped:
        run(loaded_backend, request(loaded_backend, source, 6.0), progress, cancel)
    assert (stopped.value.at_step, stopped.value.total_steps) == (20, 203)
    assert not any(phase == "decode" for phase, _, _ in progress.updates)


def _refused(backend, source, seconds=6.0) -> InvalidParams:
    progress = RecordingProgress()
    with pytest.raises(InvalidParams) as refused:
        run(backend, request(backend, source, seconds), progress)
    assert refused.value.data["field"] == "continue_from"
    assert "continue another track" in refused.value.data["hint"].lower()
    assert progress.phases == []  # refused before any work was planned
    return refused.value


def test_a_source_that_is_not_audio_is_invalid_params(loaded_backend, tmp_path):
    (tmp_path / "notes.wav").write_bytes(b"RIFF this is not a wave file at all" * 100)
    assert "not readable audio" in _refused(loaded_backend, tmp_path / "notes.wav").message


def test_a_source_shorter_than_a_second_is_invalid_params(loaded_backend, tmp_path):
    error = _refused(loaded_backend, write_source(tmp_path / "short.wav", 0.6))
    assert "0.60 s long" in error.message and error.data["minimum_sec"] == 1.0


def test_a_missing_file_a_fifo_and_nan_samples_are_invalid_params(loaded_backend, tmp_path):
    assert "cannot read" in _refused(loaded_backend, tmp_path / "gone.wav").message
    os.mkfifo(tmp_path / "pipe.wav")
    assert "not a regular file" in _refused(loaded_backend, tmp_path / "pipe.wav").message  # and no hang
    bad = np.zeros((RATE * 3, 2), dtype=np.float32)
    bad[1000] = np.nan
    sf.write(tmp_path / "nan.wav", bad, RATE, subtype="FLOAT")
    assert "NaN" in _refused(loaded_backend, tmp_path / "nan.wav").message


def test_a_mono_44k_source_is_made_48k_stereo_before_it_is_kept(loaded_backend, tmp_path):
    n = 3 * 44_100
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / 44_100)).astype(np.float32)
    sf.write(tmp_path / "mono.flac", tone, 44_100, subtype="PCM_16")
    audio = run(loaded_backend, request(loaded_backend, tmp_path / "mono.flac", 5.0))
    join = audio.metadata["join_frame"]
    assert join == 83 * 960  # 5 s / 3 = 1.67 s -> 83 whole frames
    np.testing.assert_array_equal(audio.samples[0, :join], audio.samples[1, :join])
    assert np.abs(audio.samples[0, :join]).max() == pytest.approx(0.3, abs=0.02)


def test_a_stereo_checkpoint_hears_both_sides_and_keeps_them(tmp_path, tiny_stereo_checkpoint):
    from musicgen_helpers import STEREO_MODEL, make_backend

    backend = make_backend(tmp_path / "cache", tiny_stereo_checkpoint, model=STEREO_MODEL)
    backend.load(backend._settings.device_plan)
    try:
        source = write_source(tmp_path / "src.wav", 4.0, freqs=(110.0, 1320.0))
        audio = run(backend, request(backend, source, 5.0))
        assert audio.metadata["model_channels"] == 2
        join = audio.metadata["join_frame"]
        np.testing.assert_array_equal(audio.samples[:, :join], read48(source)[:, -join:])
        # The new part is the model's own stereo: left and right are decoded from their own codebooks.
        after = audio.samples[:, join + round(JOIN_FADE_SEC * RATE):]
        assert not np.allclose(after[0], after[1], atol=1e-4)
        # Each side's codes come from that side: swapping the source's channels changes the prompt.
        swapped = tmp_path / "swapped.wav"
        sf.write(swapped, read48(source)[::-1].T, RATE, subtype="PCM_16")
        other = run(backend, request(backend, swapped, 5.0)).samples[:, join + round(JOIN_FADE_SEC * RATE):]
        assert not np.allclose(other, after, atol=1e-4)
    finally:
        backend.unload()
