"""The radio on a remote generator: tracks made on the "GPU box", played here through a real sink."""

from __future__ import annotations

import sys

import numpy as np

from remote_helpers import generator_argv, local_daemon, sidecar, wait_until


def played_tracks(d) -> list[str]:
    ids: list[str] = []
    for state in d.notifications("playback_state"):
        if state["track_id"] and state["state"] == "playing" and (not ids or ids[-1] != state["track_id"]):
            ids.append(state["track_id"])
    return ids


def test_the_radio_plays_remote_tracks_through_the_capture_sink(tmp_path):
    cap = tmp_path / "radio.f32"
    # The capture sink writes the PCM the speakers would get, at 4x real time.
    with local_daemon(tmp_path / "laptop", generator_argv(tmp_path / "gpu-box"),
                      LOFI_PLAYER_SINK=f"capture {cap} 4", LOFI_PLAYBACK="local") as d:
        # No bridge (procedural radios bridge with their first track's own song, rendered here as it
        # plays, which a 4x sink outruns; tests/radio/ has the bridge): this is about remote tracks.
        reply = d.call("radio_start", prompt="rainy jazz", duration_sec=5, crossfade_sec=1.0, bridge="none")
        assert reply["result"]["radio"] is True, reply
        wait_until(lambda: len(played_tracks(d)) >= 3, 120, "two radio track changes")
        d.call("radio_stop")
        tracks = {t["track_id"]: t for t in d.call("list_tracks")["result"]["tracks"]}
    first, second, third = played_tracks(d)[:3]
    for track_id in (first, second, third):  # each one made there, fetched, and kept here
        assert tracks[track_id]["remote"]["track_id"] != track_id
        assert sidecar(tracks[track_id]["path"])["remote"]["generator"].startswith("env LOFI_CACHE_DIR=")
    pcm = np.fromfile(cap, dtype="<f4")
    pcm = pcm[: pcm.size - pcm.size % 2].reshape(-1, 2)
    loud = np.flatnonzero(np.any(pcm != 0.0, axis=1))
    assert loud.size > 48_000  # more than a second of sound
    silent = np.all(pcm[loud[0]:loud[-1]] == 0.0, axis=1)
    runs = np.diff(np.concatenate([[0], silent.astype(np.int8), [0]]))
    longest = max((int(e - s) for s, e in zip(np.flatnonzero(runs == 1), np.flatnonzero(runs == -1))), default=0)
    assert longest < 240  # no gap of 5 ms or more once the music started


def test_while_the_remote_is_away_the_radio_bridges_to_procedural_here(tmp_path):
    cap = tmp_path / "radio.f32"
    away = [sys.executable, "-c", "import sys; sys.stderr.write('ssh: connect to host gpu-box: No route to host\\n'); sys.exit(255)"]
    with local_daemon(tmp_path / "laptop", away, backends="musicgen",
                      LOFI_PLAYER_SINK=f"capture {cap} 4", LOFI_PLAYBACK="local") as d:
        failed = d.call("generate", prompt="rain", duration_sec=5, backend="musicgen", seed=1)["result"]["track_id"]
        assert d.wait_terminal(failed, 60)["code"] == "REMOTE_UNAVAILABLE"  # now the remote is known to be away
        d.call("radio_start", prompt="rainy jazz", backend="musicgen", duration_sec=5, crossfade_sec=1.0)
        wait_until(lambda: len(played_tracks(d)) >= 2, 120, "a radio track change")
        d.call("radio_stop")
        tracks = {t["track_id"]: t for t in d.call("list_tracks")["result"]["tracks"]}
    played = played_tracks(d)
    assert played[0].startswith("bridge-")  # the radio's bridge sounded first, while its first track was made
    made = [t for t in played if not t.startswith("bridge-")]
    assert made, played
    for track_id in made[:2]:
        assert tracks[track_id]["backend"] == "procedural" and "remote" not in tracks[track_id]
    assert np.any(np.fromfile(cap, dtype="<f4") != 0.0)
