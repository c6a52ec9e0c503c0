"""The ``ace_step`` backend hands its decode windows to ``request.windows`` (play while decoding).

The backend object is driven as the daemon's job does (app.py builds the request the same
way); the daemon end of it is in test_play_while_decoding.py.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lofi_daemon.backends.ace_step.decode import WindowPlan
from lofi_daemon.backends.base import GenerationRequest
from lofi_daemon.cancel import CancelToken
from lofi_daemon.device import DevicePlan
from lofi_daemon.errors import JobCancelled

PROMPT = "lo-fi hip hop, mellow piano, vinyl crackle, 80 bpm, relaxed"
# Windows of 32 latent frames (3 s) so a 10 s track crosses several; the default plan only
# differs in size (WindowPlan()).
SMALL = WindowPlan(dcae_frames=32, vocoder_frames=256, attention_chunk_frames=24, auto_above_frames=64)


class Quiet:
    """A progress sink that remembers the last report."""

    last: tuple[str, int, int] = ("", 0, 0)

    def plan(self, phases):
        pass

    def update(self, phase, current, total):
        self.last = (phase, current, total)


class Collected:
    """What a player would be handed: each window, its rate and the progress when it came."""

    def __init__(self, progress: Quiet, after_first=None) -> None:
        self.progress = progress
        self.pieces: list[np.ndarray] = []
        self.rates: list[int] = []
        self.came_at: list[tuple[str, int, int]] = []
        self.after_first = after_first

    def window(self, samples, sample_rate):
        self.pieces.append(np.array(samples, copy=True))
        self.rates.append(sample_rate)
        self.came_at.append(self.progress.last)
        if self.after_first is not None and len(self.pieces) == 1:
            self.after_first()


@pytest.fixture(scope="module")
def backend(tmp_path_factory, acestep_checkpoint):
    from lofi_daemon.backends.ace_step.backend import AceStepBackend
    from lofi_daemon.models.store import ModelStore
    from lofi_daemon.settings import Settings

    mp = pytest.MonkeyPatch()
    mp.setenv("LOFI_ACESTEP_DIR", str(acestep_checkpoint))
    tmp = tmp_path_factory.mktemp("ace_windows")
    settings = Settings(cache_dir=tmp / "cache", config_dir=tmp / "config")
    backend = AceStepBackend(settings, ModelStore(settings.models_dir))
    backend.load(DevicePlan(preference="cpu"))
    backend._pipeline.decoder.plan = SMALL
    yield backend
    backend.unload()
    mp.undo()


def _request(**extra) -> GenerationRequest:
    return GenerationRequest(prompt=PROMPT, duration_sec=10.0, seed=11, params={"inference_steps": 2}, **extra)


def test_the_backend_says_it_decodes_in_windows(backend):
    assert backend.capabilities().decodes_in_windows


def test_windows_join_to_exactly_the_result_and_listening_changes_nothing(backend):
    progress = Quiet()
    listener = Collected(progress)
    heard = backend.generate(_request(windows=listener), progress, CancelToken())
    plain = backend.generate(_request(), Quiet(), CancelToken())
    assert len(listener.pieces) > 2 and set(listener.rates) == {heard.sample_rate} == {48000}
    phase, done, total = listener.came_at[0]
    assert phase == "decode" and 0 < done < total / 2  # the first window came early in the decode
    joined = np.concatenate(listener.pieces, axis=-1)
    assert joined.dtype == np.float32 and joined.shape == heard.samples.shape
    np.testing.assert_array_equal(joined, heard.samples)  # exactly the result
    np.testing.assert_array_equal(heard.samples, plain.samples)  # and the same as nobody listening


def test_cancel_after_the_first_window_ends_the_job_cancelled_in_the_decode(backend):
    cancel = CancelToken()
    progress = Quiet()
    listener = Collected(progress, after_first=cancel.cancel)
    with pytest.raises(JobCancelled) as err:
        backend.generate(_request(windows=listener), progress, cancel)
    assert len(listener.pieces) == 1
    # at_step counts decode units here: it stopped inside the decode, not after it
    assert 0 < err.value.at_step < err.value.total_steps


def test_a_short_track_decoded_in_one_shot_comes_whole_at_the_end_of_the_decode(backend):
    progress = Quiet()
    listener = Collected(progress)
    short = dataclasses.replace(_request(windows=listener), duration_sec=5.0)  # 53 frames: one shot
    audio = backend.generate(short, progress, CancelToken())
    # The whole track, then the resampler's last few samples (its delay line, and the pad to ceil).
    assert 1 <= len(listener.pieces) <= 2 and listener.pieces[-1].shape[-1] < 2000
    assert all(phase == "decode" and done == total for phase, done, total in listener.came_at)
    np.testing.assert_array_equal(np.concatenate(listener.pieces, axis=-1), audio.samples)
