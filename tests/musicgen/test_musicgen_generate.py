"""Generating with a loaded tiny MusicGen: length, progress, cancel, seeds, parameters."""

from __future__ import annotations

import numpy as np
import pytest

from musicgen_helpers import RecordingProgress
from lofi_daemon.cancel import CancelToken
from lofi_daemon.backends.base import GenerationRequest
from lofi_daemon.errors import JobCancelled


def request(backend, seconds=5.0, seed=7, prompt="lofi hip hop, dusty piano", **params):
    return GenerationRequest(prompt, seconds, seed, backend.capabilities().resolve_params(params))


def run(backend, req, progress=None, cancel=None):
    return backend.generate(req, progress or RecordingProgress(), cancel or CancelToken())


@pytest.mark.parametrize("seconds", [5.0, 7.33])
def test_audio_has_exactly_the_requested_length_at_32khz(loaded_backend, seconds):
    audio = run(loaded_backend, request(loaded_backend, seconds))
    assert audio.sample_rate == 32_000
    assert audio.samples.dtype == np.float32
    assert audio.samples.shape == (2, round(seconds * 32_000))
    assert np.isfinite(audio.samples).all() and np.abs(audio.samples).max() > 0
    assert audio.metadata["tokens"] == audio.metadata["frames"] + 3


def test_mono_checkpoints_play_the_same_signal_on_both_channels(loaded_backend):
    audio = run(loaded_backend, request(loaded_backend))
    assert audio.metadata["model_channels"] == 1
    np.testing.assert_array_equal(audio.samples[0], audio.samples[1])


def test_progress_reports_every_token_then_the_decode_and_never_goes_back(loaded_backend):
    progress = RecordingProgress()
    audio = run(loaded_backend, request(loaded_backend, 5.0), progress)
    tokens = audio.metadata["tokens"]
    assert [name for name, _ in progress.phases] == ["text", "tokens", "decode"]
    assert progress.tokens() == list(range(1, tokens + 1))  # one update per decoder step
    assert progress.updates[0] == ("text", 0, 1) and ("text", 1, 1) in progress.updates
    assert progress.updates[-1] == ("decode", 1, 1)
    percents = progress.percents()
    assert all(b >= a for a, b in zip(percents, percents[1:]))
    assert percents[-1] == pytest.approx(100.0)


def test_cancel_mid_generation_stops_within_one_token(loaded_backend):
    cancel = CancelToken()
    forwards = []
    decoder = loaded_backend._session.model.decoder
    handle = decoder.register_forward_hook(lambda *_: forwards.append(1))

    forwards_at_cancel = []

    def cancel_at_token_40(phase, current, total):
        if phase == "tokens" and current == 40:
            cancel.cancel()
            forwards_at_cancel.append(len(forwards))

    progress = RecordingProgress(on_update=cancel_at_token_40)
    try:
        with pytest.raises(JobCancelled) as stopped:
            run(loaded_backend, request(loaded_backend, 5.0), progress, cancel)
    finally:
        handle.remove()
    assert stopped.value.at_step == 40 and stopped.value.total_steps == 253
    assert progress.tokens()[-1] == 40  # no token reported after the cancel
    assert len(forwards) - forwards_at_cancel[0] <= 1  # at most one more decoder step ran
    assert not any(phase == "decode" for phase, _, _ in progress.updates)


def test_a_cancelled_job_leaves_the_backend_ready_for_the_next(loaded_backend):
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(JobCancelled) as stopped:
        run(loaded_backend, request(loaded_backend), cancel=cancel)
    assert stopped.value.at_step == 0
    progress = RecordingProgress()
    audio = run(loaded_backend, request(loaded_backend), progress)
    assert audio.samples.shape == (2, 160_000)
    assert progress.updates.count(("text", 1, 1)) == 1  # the cancelled run's hooks are gone


def test_same_seed_gives_bit_identical_audio(loaded_backend):
    first = run(loaded_backend, request(loaded_backend, seed=1234))
    run(loaded_backend, request(loaded_backend, seed=99))  # the global RNG moves in between
    second = run(loaded_backend, request(loaded_backend, seed=1234))
    assert first.samples.tobytes() == second.samples.tobytes()


def test_different_seeds_give_different_audio(loaded_backend):
    # With the defaults (top_p = 0 meaning "off", not greedy) sampling depends on the seed.
    a = run(loaded_backend, request(loaded_backend, seed=1))
    b = run(loaded_backend, request(loaded_backend, seed=2))
    assert not np.array_equal(a.samples, b.samples)


def test_top_k_of_one_is_greedy_so_the_seed_no_longer_matters(loaded_backend):
    a = run(loaded_backend, request(loaded_backend, seed=1, top_k=1))
    b = run(loaded_backend, request(loaded_backend, seed=2, top_k=1))
    np.testing.assert_array_equal(a.samples, b.samples)


def test_guidance_scale_changes_the_music(loaded_backend):
    a = run(loaded_backend, request(loaded_backend, seed=5, guidance_scale=3.0))
    b = run(loaded_backend, request(loaded_backend, seed=5, guidance_scale=8.0))
    assert not np.array_equal(a.samples, b.samples)


def test_metadata_names_the_device_dtype_and_model(loaded_backend):
    meta = run(loaded_backend, request(loaded_backend)).metadata
    assert meta["device"] == "cpu" and meta["dtype"] == "float32"
    assert meta["model_id"] == "facebook/musicgen-small"
    assert loaded_backend.model_version == f"facebook/musicgen-small@{meta['revision']}"
