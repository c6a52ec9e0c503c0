"""The radio's first minute on a slow backend, through the real daemon, the real playback
worker and the capture sink: music within a second (a bridge), the AI track taking over with
no silence, and a stop in the middle leaving no job, file or sound behind.

The backend is the paced stand-in (stand_in.py): 60 s per track here, as a big model on a CPU.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from playback_helpers import RATE, generate, playback, read_pcm, silent_runs, sound_span, start, wait_until
from radio_helpers import start_stand_in, stopped_clean, track_changes

FIRST_SOUND_LIMIT_SEC = 1.0


def first_sound_after(d, t0: float) -> float:
    """Seconds from ``t0`` to the worker's first sample into the sink (the same monotonic clock)."""
    at = wait_until(lambda: playback(d)["first_sample_at"], 20, "a first sample")
    return at - t0


def test_a_procedural_bridge_sounds_within_a_second_while_a_60_s_track_is_made(cache_dir, tmp_path):
    cap = tmp_path / "radio.f32"
    with start_stand_in(cache_dir, f"capture {cap} 1", pace_sec=60) as d:
        assert d.call("ping")["result"]["status"] == "ok"  # the daemon is up: we time the radio, not its start
        t0 = time.monotonic()
        reply = d.call("radio_start", prompt="chill rain, jazzy piano", backend="paced", duration_sec=30)["result"]
        waited = first_sound_after(d, t0)
        assert reply["bridge"]["kind"] == "procedural" and reply["from_library"] is False
        first_ai = reply["first_track_id"]
        assert waited <= FIRST_SOUND_LIMIT_SEC, f"first sound after {waited:.2f} s"
        print(f"first sound (procedural bridge): {waited:.3f} s")
        # What plays is the bridge, steered by the prompt; the AI track is on its way with an ETA.
        state = wait_until(lambda: (s := playback(d))["state"] == "playing" and s["next"] and
                           s["next"]["eta_sec"] is not None and s, 20, "a playing bridge with an ETA")
        assert state["radio_bridge"]["kind"] == "procedural"
        assert state["track_id"] == reply["bridge"]["track_id"] != first_ai
        assert state["prompt"] == "chill rain, jazzy piano"
        assert state["next"]["track_id"] == first_ai and 0 < state["next"]["eta_sec"] <= 600  # an ETA is given (its size follows the machine)
        wait_until(lambda: cap.stat().st_size >= 3 * RATE * 8, 20, "three seconds of bridge")
        d.call("radio_stop")
        cancelled = d.wait_terminal(first_ai, 20)
        clean = stopped_clean(d, cache_dir / "tracks")
        size = cap.stat().st_size
        time.sleep(0.5)
        # No sound after the stop: at most the block that carries the stop's 20 ms ramp to zero
        # (the worker may report "stopped" before that block reaches the sink).
        assert cap.stat().st_size - size <= 1024 * 2 * 4
    assert cancelled["method"] == "generation_cancelled"
    assert clean["strays"] == set() and first_ai not in clean["listed"]
    out = read_pcm(cap)
    begin, end = sound_span(out)
    assert silent_runs(out[begin:end]) == []  # the bridge streamed with no hole between its sections
    assert np.sqrt(np.mean(out[begin:end] ** 2)) > 0.01


def test_the_library_bridge_is_the_track_whose_prompt_is_nearest(cache_dir, tmp_path):
    cap = tmp_path / "radio.f32"
    with start_stand_in(cache_dir, f"capture {cap} 1", pace_sec=60) as d:
        rain = generate(d, "rainy jazz piano at night", 5, seed=1, backend="procedural")
        sunny = generate(d, "sunny upbeat pop", 5, seed=2, backend="procedural")
        t0 = time.monotonic()
        reply = d.call("radio_start", prompt="chill rain, jazz", backend="paced", duration_sec=30)["result"]
        waited = first_sound_after(d, t0)
        assert reply["bridge"]["kind"] == "library" and reply["from_library"] is True
        assert reply["bridge"]["track_id"] == rain["track_id"]
        assert waited <= FIRST_SOUND_LIMIT_SEC, f"first sound after {waited:.2f} s"
        d.call("radio_stop")
        clean = stopped_clean(d, cache_dir / "tracks")
    # The radio's cancelled first track left nothing: the library is the two tracks made before.
    assert clean["strays"] == set() and clean["listed"] == {rain["track_id"], sunny["track_id"]}


def test_the_ai_track_takes_over_from_the_bridge_with_no_silent_window(cache_dir, tmp_path):
    cap = tmp_path / "radio.f32"
    # No windows: this is the hand-over of a finished track, crossfaded on the bridge's bar line.
    with start_stand_in(cache_dir, f"capture {cap} 1", pace_sec=3, caps="") as d:
        reply = d.call("radio_start", prompt="rainy lofi beats", backend="paced", duration_sec=8,
                       crossfade_sec=1.0)["result"]
        bridge, first_ai = reply["bridge"]["track_id"], reply["first_track_id"]
        wait_until(lambda: first_ai in track_changes(d), 60, "the AI track playing")
        state = playback(d)
        size = cap.stat().st_size // 8
        wait_until(lambda: cap.stat().st_size // 8 >= size + 2 * RATE, 20, "two more seconds")
        d.call("radio_stop")
        clean = stopped_clean(d, cache_dir / "tracks")
    assert track_changes(d)[:2] == [bridge, first_ai]
    assert state["radio_bridge"] is None  # the bridge has stepped down
    out = read_pcm(cap)
    begin, end = sound_span(out)
    assert silent_runs(out[begin:end]) == []
    assert first_ai in clean["listed"] and clean["strays"] == set()


def test_on_the_procedural_backend_the_bridge_is_the_first_tracks_own_song(cache_dir, tmp_path):
    cap = tmp_path / "radio.f32"
    with start(cache_dir, f"capture {cap} 1") as d:  # the real procedural backend, an empty library
        reply = d.call("radio_start", prompt="chill rain, jazzy piano", duration_sec=30)["result"]
        bridge, first = reply["bridge"], reply["first_track_id"]
        # auto: no library track, so procedural music; on this backend, the first track's own song.
        assert bridge["kind"] == "procedural" and bridge["same_song"] is True
        assert "own song" in bridge["reason"]
        wait_until(lambda: first in track_changes(d), 60, "the first track taking over")
        size = cap.stat().st_size
        wait_until(lambda: cap.stat().st_size >= size + 2 * RATE * 8, 20, "two more seconds")
        d.call("radio_stop")
    meta = json.loads((cache_dir / "tracks" / f"{first}.json").read_text())
    assert track_changes(d)[:2] == [bridge["track_id"], first]
    out = read_pcm(cap)
    begin, end = sound_span(out)
    assert silent_runs(out[begin:end]) == []  # from the bridge into the track, never a hole
    # The bridge plays that track's seed (its key and progression) at its tempo (its bar lines).
    assert bridge["seed"] == meta["seed"] and bridge["bpm"] == pytest.approx(meta["bpm"], abs=1e-3)
