"""Radio through the real daemon: endless music, the next track made while one plays."""

from __future__ import annotations

import numpy as np

from playback_helpers import RATE, playback, read_pcm, silent_runs, sound_span, start, wait_until


def track_changes(d) -> list[str]:
    ids: list[str] = []
    for state in d.notifications("playback_state"):
        if state["track_id"] and (not ids or ids[-1] != state["track_id"]):
            ids.append(state["track_id"])
    return ids


def test_radio_on_a_backend_slower_than_real_time_loops_until_the_next_is_ready(cache_dir, tmp_path):
    cap = tmp_path / "radio.f32"
    # Each 5 s track takes 4 s to make; the capture plays at 4x real time (1.25 s per pass).
    with start(cache_dir, f"capture {cap} 4", paced_sec=4) as d:
        reply = d.call("radio_start", prompt="rainy jazz", duration_sec=5, crossfade_sec=1.0)
        assert reply["result"]["radio"] is True and reply["result"]["from_library"] is False
        # An empty library: the bridge is the first track's own song, rendered as it plays.
        bridge = reply["result"]["bridge"]
        assert bridge["kind"] == "procedural" and bridge["same_song"] is True
        radio_tracks = lambda: [t for t in track_changes(d) if t != bridge["track_id"]]  # noqa: E731
        wait_until(lambda: len(radio_tracks()) >= 2, 120, "the bridge, then two radio tracks")
        states = d.notifications("playback_state")
        d.call("radio_stop")
        listed = {t["track_id"] for t in d.call("list_tracks")["result"]["tracks"]}
    assert track_changes(d)[0] == bridge["track_id"]  # the bridge sounded first
    first, second = radio_tracks()[:2]
    # While the second track was being made, the first one kept playing, wrapping round its loop.
    positions = [s["position_sec"] for s in states if s["track_id"] == first and s["state"] == "playing"]
    assert any(b < a for a, b in zip(positions, positions[1:])), positions
    waiting = [s["next"] for s in states if s["track_id"] == first and s["next"]]
    assert any(n["track_id"] == second and n["percent"] < 100 for n in waiting)
    out = read_pcm(cap)
    begin, end = sound_span(out)
    # Never silence after the first sound, but where the bridge said it was buffering: a 4x
    # sink can outrun a bridge rendered as it plays (at real time it keeps ahead: tests/radio/).
    spells = sum(1 for a, b in zip(states, states[1:]) if b["buffering"] and not a["buffering"]
                 and b["track_id"] == bridge["track_id"])
    assert len(silent_runs(out[begin:end])) <= spells
    assert not any(s["buffering"] for s in states if s["track_id"] in (first, second))
    assert {first, second} <= listed  # radio tracks land in the library like any other


def test_ten_minutes_of_radio_on_the_procedural_backend_have_no_gap(cache_dir, tmp_path):
    cap = tmp_path / "radio.f32"
    minutes = 10
    # 40x real time: ten minutes of audio in about a quarter of a minute, tracks changing every
    # few passes (a 20 s track renders in well under its 0.5 s pass).
    # No bridge: one rendered as it plays cannot keep ahead of a 40x sink (the bridge has its own
    # real-time tests in tests/radio/); this is about tracks following tracks. Waiting for five
    # changes as well as for the ten minutes keeps the outcome independent of the machine's load.
    with start(cache_dir, f"capture {cap} 40") as d:
        d.call("radio_start", prompts=["rainy jazz", "sunny upbeat", "sad piano night"], duration_sec=20,
               crossfade_sec=4.0, bridge="none")
        wait_until(lambda: cap.exists() and cap.stat().st_size >= minutes * 60 * RATE * 8
                   and len(track_changes(d)) >= 5, 240, f"{minutes} minutes of radio and five tracks")
        d.call("radio_stop")
        played = track_changes(d)
        errors = d.notifications("playback_error")
    out = read_pcm(cap)
    cap.unlink()
    begin, end = sound_span(out)
    assert begin < RATE  # music within the first second of capture
    assert silent_runs(out[begin:end]) == []
    assert np.sqrt(np.mean(out[begin:end:97] ** 2)) > 0.01  # music, not near-silence
    assert len(played) >= 5 and errors == []


def test_skip_goes_to_the_next_track_when_it_is_ready(cache_dir, tmp_path):
    cap = tmp_path / "radio.f32"
    with start(cache_dir, f"capture {cap} 1", paced_sec=3) as d:
        bridge = d.call("radio_start", prompt="rainy jazz", duration_sec=20)["result"]["bridge"]["track_id"]
        radio_tracks = lambda: [t for t in track_changes(d) if t != bridge]  # noqa: E731
        wait_until(lambda: len(radio_tracks()) >= 1, 60, "first radio track")
        first = radio_tracks()[0]
        assert d.call("radio_skip")["result"] == {"skipped": False}  # the next one is still being made
        wait_until(lambda: len(radio_tracks()) >= 2, 60, "skipped to the second track")
        state = playback(d)
        assert state["track_id"] != first and state["position_sec"] < 10  # long before the 20 s end
        d.call("radio_stop")
        assert wait_until(lambda: (s := playback(d))["state"] == "stopped" and not s["radio"] and s, 10, "stopped")


def test_a_user_generate_waits_behind_at_most_one_radio_job(cache_dir, tmp_path):
    with start(cache_dir, f"capture {tmp_path / 'o.f32'} 1", paced_sec=6) as d:
        d.call("radio_start", prompt="rainy jazz", duration_sec=5)
        reply = d.call("generate", prompt="my own track", duration_sec=5, seed=7)["result"]
        assert reply["position"] <= 1
        status = d.call("get_status")["result"]
        radio_jobs = [j for j in [status["current"], *status["queue"]] if j and j["prompt"] == "rainy jazz"]
        assert len(radio_jobs) == 1
        d.call("radio_stop")
