"""Playback through the real daemon and its real worker process, heard by real sinks.

The capture sink records exactly the PCM the mixer emitted (``capture PATH SPEED``; speed 0
runs as fast as the mixer can, so minutes of audio take seconds); mpv --ao=null consumes it
at real-time pace like a sound card.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from playback_helpers import (GAP_FRAMES, RATE, command_applied, generate, playback, read_pcm, read_track,
                              silent_runs, sound_span, start, wait_until)

BLOCK = 1024
RAMP = int(0.02 * RATE)


def captured(path, frames: int) -> np.ndarray:
    wait_until(lambda: path.exists() and path.stat().st_size >= frames * 8, 60, f"{frames} captured frames")
    return read_pcm(path)


def test_a_looping_track_repeats_sample_exactly_with_no_click_at_the_seam(cache_dir, tmp_path):
    cap = tmp_path / "out.f32"
    with start(cache_dir, f"capture {cap} 0") as d:
        track = generate(d, "rainy jazz", 5)
        assert d.call("play", track_id=track["track_id"])["result"]["playing"]
        n = int(round(track["duration_sec"] * RATE))
        out = captured(cap, 4 * n)
        d.call("stop")
    source = read_track(track["path"])
    assert source.shape[0] == n
    # Pass after pass the sink gets the file itself: the loop closes on its exact last sample.
    np.testing.assert_array_equal(out[n:3 * n], np.concatenate([source, source]))
    own_step = np.percentile(np.abs(np.diff(source, axis=0)), 99.9)
    for seam in (n, 2 * n, 3 * n):
        assert np.abs(out[seam] - out[seam - 1]).max() <= own_step
    assert silent_runs(out[RAMP:4 * n]) == silent_runs(np.concatenate([source] * 4)[RAMP:])


def test_changing_tracks_crossfades_with_no_silent_gap(cache_dir, tmp_path):
    cap = tmp_path / "out.f32"
    with start(cache_dir, f"capture {cap} 0") as d:
        a = generate(d, "rainy jazz", 5, seed=1)
        b = generate(d, "upbeat sunny", 5, seed=2)
        d.call("play", track_id=a["track_id"])
        captured(cap, 3 * RATE)
        d.call("play", track_id=b["track_id"])
        d.wait_for("playback_state", track_id=b["track_id"])
        size = cap.stat().st_size // 8
        out = captured(cap, size + 3 * RATE)
        d.call("stop")
    first, last = sound_span(out)
    assert silent_runs(out[first:last]) == []


def test_pause_resume_and_volume_land_within_one_block_with_ramps(cache_dir, tmp_path):
    cap = tmp_path / "out.f32"
    with start(cache_dir, f"capture {cap} 1") as d:  # real-time pace, as a sound card takes it
        track = generate(d, "rainy jazz", 5)
        d.call("play", track_id=track["track_id"])
        captured(cap, RATE // 2)
        d.call("set_volume", volume=50)
        vol = command_applied(d, "volume")
        captured(cap, vol["applied_frame"] + RATE // 4)
        d.call("pause")
        pause = command_applied(d, "pause", vol["id"])
        captured(cap, pause["applied_frame"] + RATE // 4)
        d.call("resume")
        resume = command_applied(d, "resume", pause["id"])
        out = captured(cap, resume["applied_frame"] + RATE // 2)
        d.call("stop")
    for cmd in (vol, pause, resume):  # the mixer takes a command at the next block it renders
        assert 0 <= cmd["applied_frame"] - cmd["received_frame"] <= BLOCK
    source = read_track(track["path"])
    n = source.shape[0]

    def src(frame: int, count: int) -> np.ndarray:  # what the track holds at capture frame `frame`
        return np.take(source, np.arange(frame, frame + count) % n, axis=0)

    v = vol["applied_frame"]
    np.testing.assert_array_equal(out[v - 2000:v], src(v - 2000, 2000))  # untouched before
    np.testing.assert_allclose(out[v + RAMP:v + RAMP + 2000], 0.5 * src(v + RAMP, 2000), atol=1e-6)
    gain = out[v:v + RAMP] / np.where(src(v, RAMP) == 0, 1, src(v, RAMP))
    ramp = np.linspace(1, 0.5, RAMP)
    assert np.all(np.abs(gain - ramp[:, None])[np.abs(src(v, RAMP)) > 1e-3] < 0.01)
    p = pause["applied_frame"]
    assert np.all(out[p + RAMP:resume["applied_frame"]] == 0.0)  # silent within the ramp, and held
    assert np.abs(out[p:p + RAMP]).max() > 0  # ...but through a ramp, not a cut
    r = resume["applied_frame"]
    held = p + RAMP  # the position froze where the pause ramp ended
    np.testing.assert_allclose(out[r + RAMP:r + RAMP + 2000], 0.5 * src(held + RAMP, 2000), atol=1e-6)


def test_seek_lands_on_the_requested_sample(cache_dir, tmp_path):
    cap = tmp_path / "out.f32"
    with start(cache_dir, f"capture {cap} 1") as d:
        track = generate(d, "rainy jazz", 5)
        d.call("play", track_id=track["track_id"])
        captured(cap, RATE // 2)
        assert d.call("seek", position_sec=3.0)["result"] == {"position_sec": 3.0}
        seek = command_applied(d, "seek")
        out = captured(cap, seek["applied_frame"] + RATE // 2)
        bad = d.call("seek", position_sec=9.0)
        d.call("stop")
    assert bad["error"]["data"]["field"] == "position_sec"
    source = read_track(track["path"])
    s = seek["applied_frame"]
    np.testing.assert_array_equal(out[s + RAMP:s + RAMP + RATE // 4], source[3 * RATE + RAMP:3 * RATE + RAMP + RATE // 4])


@pytest.mark.skipif(shutil.which("mpv") is None, reason="mpv is installed by scripts/test.sh and CI")
def test_mpv_plays_at_real_time_pace_through_a_track_change(cache_dir):
    with start(cache_dir, "mpv --ao=null") as d:
        a = generate(d, "rainy jazz", 5, seed=1)
        b = generate(d, "sunny", 5, seed=2)
        d.call("play", track_id=a["track_id"])
        state = wait_until(lambda: (s := playback(d))["sink"] == "mpv" and s["position_sec"] > 0.3 and s, 30,
                           "mpv playing")
        assert state["state"] == "playing" and state["track_id"] == a["track_id"]
        d.call("play", track_id=b["track_id"])
        state = wait_until(lambda: (s := playback(d))["track_id"] == b["track_id"] and s["position_sec"] > 1.5 and s,
                           30, "second track playing")
        assert state["underruns"] == 0 or state["underruns"] < 5  # reported, measured in bench/
        d.call("stop")
        wait_until(lambda: playback(d)["state"] == "stopped", 10, "stopped")
    assert d.notifications("playback_error") == []


def sink_error_then_recovery(cache_dir, tmp_path, sink: str) -> dict:
    cap = tmp_path / "out.f32"
    with start(cache_dir, sink) as d:
        track = generate(d, "rainy jazz", 5)
        d.call("play", track_id=track["track_id"])
        error = d.wait_for("playback_error", timeout=30)
        assert d.call("ping")["result"]["status"] == "ok"
        assert playback(d)["state"] == "stopped"
        assert d.call("play", track_id=track["track_id"], sink=f"capture {cap} 0")["result"]["playing"]
        captured(cap, RATE)
        d.call("stop")
    return error


def test_a_sink_that_exits_is_reported_with_its_own_message(cache_dir, tmp_path):
    error = sink_error_then_recovery(cache_dir, tmp_path,
                                     "sh -c 'echo \"audio open error: no such card\" >&2; exit 3'")
    assert error["code"] == "PLAYBACK_FAILED"
    assert "audio open error: no such card" in error["message"]
    assert "stderr" not in error  # the sink's words once, in the message
    assert "exit code 3" in error["message"] and "player.sink" in error["hint"]


def test_a_missing_sink_is_reported_and_the_next_play_works(cache_dir, tmp_path):
    error = sink_error_then_recovery(cache_dir, tmp_path, "lofi-no-such-player --raw")
    assert "lofi-no-such-player is not installed" in error["message"]
    assert "Install lofi-no-such-player" in error["hint"]


def test_a_sink_that_hangs_is_stopped_and_reported(cache_dir, tmp_path):
    error = sink_error_then_recovery(cache_dir, tmp_path, "sleep 600")  # never reads its stdin
    assert "stopped reading audio" in error["message"] and "hung" in error["message"]


def test_playing_an_unreadable_file_is_an_error_not_a_crash(cache_dir, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really")
    with start(cache_dir, f"capture {tmp_path / 'o.f32'} 0") as d:
        assert d.call("play", path=str(bad))["result"]["playing"]
        error = d.wait_for("playback_error")
        assert "cannot play" in error["message"] and str(bad) in error["message"]
        assert d.call("play", track_id="t-missing")["error"]["data"]["error_code"] == "TRACK_NOT_FOUND"
        assert d.call("set_volume", volume=151)["error"]["data"]["field"] == "volume"
        assert d.call("next")["error"]["data"]["error_code"] == "PLAYBACK_FAILED"
        assert d.call("ping")["result"]["status"] == "ok"


def test_a_daemon_started_over_ssh_refuses_to_play_out_of_the_other_machine(cache_dir, tmp_path):
    with start(cache_dir, f"capture {tmp_path / 'o.f32'} 0", LOFI_PLAYBACK="",
               SSH_CONNECTION="10.0.0.2 50000 10.0.0.9 22") as d:
        track = generate(d, "rainy jazz", 5)
        reply = d.call("play", track_id=track["track_id"])
        radio = d.call("radio_start", prompt="rain")
    assert reply["error"]["data"]["error_code"] == "PLAYBACK_FAILED" and reply["error"]["data"]["remote"] is True
    assert "another machine" in reply["error"]["message"] and "10.0.0.9" in reply["error"]["message"]
    assert "LOFI_PLAYBACK=local" in reply["error"]["data"]["hint"]
    assert radio["error"]["data"]["error_code"] == "PLAYBACK_FAILED"
    assert not (tmp_path / "o.f32").exists()


def test_a_killed_playback_worker_is_reported_and_the_next_play_starts_a_new_one(cache_dir, tmp_path):
    import os
    import signal

    cap = tmp_path / "out.f32"
    with start(cache_dir, f"capture {cap} 1") as d:
        track = generate(d, "rainy jazz", 5)
        d.call("play", track_id=track["track_id"])
        captured(cap, RATE // 4)
        pid = playback(d)["worker_pid"]
        os.kill(pid, signal.SIGKILL)
        error = d.wait_for("playback_error", timeout=30)
        assert "playback worker exited" in error["message"] and error["hint"]
        assert playback(d)["state"] == "stopped" and d.call("ping")["result"]["status"] == "ok"
        d.call("set_volume", volume=70)
        d.call("play", track_id=track["track_id"])
        state = wait_until(lambda: (s := playback(d))["worker_pid"] not in (None, pid) and s["sink"] and s, 30,
                           "a new worker playing")
        assert state["volume"] == 70  # the new worker was told what the old one had
        d.call("stop")
