"""``continue_from`` on the procedural backend: the source's sidecar and audio are read as
untrusted files; what can be used is kept (key, mode, tempo), the rest is a clear error."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf

from lofi_daemon.backends.base import Continuation, GenerationRequest
from lofi_daemon.backends.procedural import ProceduralBackend, render
from lofi_daemon.cancel import CancelToken
from lofi_daemon.errors import InvalidParams

RATE = 48_000
TRACK_ID = "t0123456789ab"


class NoProgress:
    def plan(self, phases):
        pass

    def update(self, phase, current, total):
        pass


def source(tmp_path, meta, seconds=8.0, samples=None):
    """A library-shaped track: ``<id>.wav`` (16-bit, 48 kHz) and ``<id>.json``."""
    if samples is None:
        t = np.arange(int(seconds * RATE)) / RATE
        samples = np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.3 * np.sin(2 * np.pi * 330 * t)])
    path = tmp_path / f"{TRACK_ID}.wav"
    sf.write(path, np.asarray(samples).T, RATE, subtype="PCM_16")
    sidecar = tmp_path / f"{TRACK_ID}.json"
    sidecar.write_text(meta if isinstance(meta, str) else json.dumps(meta))
    return path


def go_on(path, prompt="lofi", seconds=12.0, seed=3):
    request = GenerationRequest(prompt=prompt, duration_sec=seconds, seed=seed, params={"section_offset": 0},
                                continue_from=Continuation(TRACK_ID, str(path)))
    return ProceduralBackend().generate(request, NoProgress(), CancelToken())


def test_a_track_from_another_backend_is_continued_in_the_key_and_tempo_its_sidecar_names(tmp_path):
    path = source(tmp_path, {"backend": "musicgen", "prompt": "lofi", "key": "D minor", "bpm": 90.0})
    out = go_on(path)
    meta = out.metadata
    assert meta["key"] == "D minor" and meta["bpm"] == pytest.approx(90.0, abs=0.01)
    assert meta["continues"] == TRACK_ID and meta["same_song"] is False and meta["kept"] == ["key", "mode", "tempo"]
    join = meta["join_frame"]
    assert out.samples.shape[1] == int(12.0 * RATE) and join >= 2 * RATE
    # Its new part is whole bars at that tempo (within the FFT-friendly nudge of 5 ms).
    bar = 4 * 60.0 / 90.0 * RATE
    bars = (out.samples.shape[1] - join) / bar
    assert abs(bars - round(bars)) * bar <= 0.005 * RATE and round(bars) >= 1
    # It begins with the source's end, as read from its file (the lead-in comes last).
    heard, _ = sf.read(path, dtype="float32", always_2d=True)
    lead = int(0.25 * RATE)
    np.testing.assert_array_equal(out.samples[:, :join - lead], heard[-join:-lead].T)


def test_what_a_sidecar_gets_wrong_is_left_to_the_seed(tmp_path):
    # A procedural sidecar of the same prompt, but every field it would take is unusable.
    path = source(tmp_path, {"backend": "procedural", "model_version": "procedural-3", "prompt": "lofi",
                             "seed": -4, "next_section_offset": 10**9, "key": "H major", "bpm": "fast",
                             "beats": True})
    out = go_on(path, seed=11)
    plain = render("lofi", 12.0, 11, NoProgress(), CancelToken())
    assert out.metadata["kept"] == [] and out.metadata["same_song"] is False
    assert out.metadata["song_seed"] == 11 and out.metadata["key"] == plain.metadata["key"]


@pytest.mark.parametrize("sidecar", ["{not json", "[1, 2]", None])
def test_a_sidecar_that_cannot_be_read_is_a_clear_invalid_params(tmp_path, sidecar):
    path = source(tmp_path, sidecar or "{}")
    if sidecar is None:  # a FIFO where the sidecar should be: never waited on
        (tmp_path / f"{TRACK_ID}.json").unlink()
        os.mkfifo(tmp_path / f"{TRACK_ID}.json")
    with pytest.raises(InvalidParams) as caught:
        go_on(path)
    assert caught.value.data["field"] == "continue_from" and TRACK_ID in caught.value.message
    assert "continue_from" in caught.value.hint


def test_audio_that_is_not_a_48_khz_track_is_refused(tmp_path):
    path = tmp_path / f"{TRACK_ID}.wav"
    sf.write(path, np.zeros((44_100, 2)), 44_100, subtype="PCM_16")
    (tmp_path / f"{TRACK_ID}.json").write_text("{}")
    with pytest.raises(InvalidParams, match="44100 Hz"):
        go_on(path)


def test_the_same_song_goes_on_from_its_next_section_with_a_lead_in_and_no_step_at_the_join(tmp_path):
    first = render("lofi", 45.0, 8, NoProgress(), CancelToken())
    meta = {"backend": "procedural", "model_version": "procedural-3", "prompt": "lofi", "seed": 8, **first.metadata}
    path = source(tmp_path, meta, samples=first.samples)
    out = go_on(path, prompt="lofi", seconds=45.0, seed=99)
    two = out.metadata
    assert two["same_song"] is True and two["song_seed"] == 8
    assert two["section_offset"] == first.metadata["next_section_offset"]
    assert two["key"] == first.metadata["key"] and two["bpm"] == pytest.approx(first.metadata["bpm"], abs=0.01)
    join = two["join_frame"]
    # The prefix ends in the new part's own last moments, which flow into its first sample:
    # the step into join_frame is no larger than the music's own steps around it.
    x = out.samples.T
    steps = np.abs(np.diff(x[join - 4800:join + 4800], axis=0)).max(axis=1)
    assert steps[4799] <= np.percentile(np.delete(steps, 4799), 99)
