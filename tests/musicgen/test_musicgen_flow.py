"""MusicGen continuations through the real daemon: generate with continue_from, and the radio's flow.

The tiny checkpoint is installed where setup puts a download; the daemon loads it offline,
writes 48 kHz tracks, and (for the radio) plays them through the capture sink.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from daemon_client import Daemon
from musicgen_helpers import make_backend

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "playback"))
from playback_helpers import read_pcm, read_track, wait_until  # noqa: E402

DAEMON_ENV = {"OMP_NUM_THREADS": "1", "LOFI_DEVICE": "cpu"}
RATE = 48_000
FADE = round(0.005 * RATE)  # the track writer's fade-in at the very start of every file
KNEE = 10 ** (-1 / 20)  # the mixer's safety limiter leaves samples below -1 dBFS untouched


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, tiny_checkpoint):
    cache = tmp_path_factory.mktemp("musicgen-flow") / "cache"
    make_backend(cache, tiny_checkpoint)
    with Daemon.start(cache, DAEMON_ENV) as d:
        d.cache = cache
        yield d


def finished(daemon, timeout=300, **params) -> dict:
    reply = daemon.call("generate", backend="musicgen", **params)
    assert "result" in reply, reply
    end = daemon.wait_terminal(reply["result"]["track_id"], timeout=timeout)
    return end


def sidecar(path: str) -> dict:
    return json.loads(Path(path).with_suffix(".json").read_text())


def files_of(daemon, track_id: str) -> list[Path]:
    return sorted((daemon.cache / "tracks").glob(f"{track_id}*"))


def test_get_backends_says_which_backends_continue_audio_and_decode_in_windows(daemon):
    backends = {b["name"]: b for b in daemon.call("get_backends")["result"]["backends"]}
    flags = {name: (b["continues_audio"], b["decodes_in_windows"]) for name, b in backends.items()}
    # The table in docs/radio.md (sections 2 and 3).
    assert flags == {"procedural": (True, False), "musicgen": (True, False), "ace_step": (False, True),
                     "ace_step_15": (True, True), "stable_audio_3": (True, True)}


def test_a_continuation_file_begins_with_the_sources_last_seconds_and_says_where_it_joins(daemon):
    source = finished(daemon, prompt="warm tape jazz", duration_sec=5, seed=21)
    assert source["method"] == "generation_complete"
    cont = finished(daemon, prompt="warm tape jazz", duration_sec=6, seed=22, continue_from=source["track_id"])
    assert cont["method"] == "generation_complete", cont
    meta = sidecar(cont["path"])
    assert meta["continues"] == source["track_id"]
    join = meta["join_frame"]
    assert join == 2 * RATE  # a third of 6 s, in the written file's 48 kHz frames
    old, new = read_track(source["path"]), read_track(cont["path"])
    assert new.shape == (6 * RATE, 2) and 0 < join < new.shape[0]
    # The source's samples as they are in its file (16-bit both ways), after the writer's 5 ms fade-in.
    np.testing.assert_array_equal(new[FADE:join], old[-join + FADE:])
    assert np.all(np.abs(new[:FADE]) <= np.abs(old[-join:-join + FADE]) + 1 / 32768)
    # Played as the radio's flow does (old to its last sample, then the new one from join_frame)
    # there is no step at the join larger than the music's own.
    heard = np.concatenate([old, new[join:]])
    steps = np.abs(np.diff(heard, axis=0))
    assert steps[len(old) - 5:len(old) + 5].max() <= steps[len(old) - RATE:len(old) - 5].max()


def test_the_same_seed_and_source_give_the_same_file(daemon):
    source = finished(daemon, prompt="rainy night", duration_sec=5, seed=31)
    request = {"prompt": "rainy night", "duration_sec": 5, "seed": 32, "continue_from": source["track_id"]}
    first = finished(daemon, **request)
    digest = hashlib.sha256(Path(first["path"]).read_bytes()).hexdigest()
    daemon.call("delete_track", track_id=first["track_id"])  # else the library answers from its cache
    again = finished(daemon, **request)
    assert again["track_id"] != first["track_id"]
    assert hashlib.sha256(Path(again["path"]).read_bytes()).hexdigest() == digest


@pytest.mark.parametrize("damage", ["not audio", "too short"])
def test_a_source_file_that_cannot_be_continued_ends_invalid_params_and_writes_nothing(daemon, damage):
    source = finished(daemon, prompt="lofi", duration_sec=5, seed=41)
    path = Path(source["path"])
    if damage == "not audio":
        path.write_bytes(b"this was a track once" * 1000)
    else:
        sf.write(path, np.zeros((RATE // 2, 2), dtype=np.float32), RATE, subtype="PCM_16", format="WAV")
    reply = daemon.call("generate", backend="musicgen", prompt="lofi", duration_sec=6, seed=42,
                        continue_from=source["track_id"])
    track_id = reply["result"]["track_id"]
    end = daemon.wait_terminal(track_id, timeout=120)
    assert end["method"] == "generation_error" and end["code"] == "INVALID_PARAMS", end
    assert ("not readable audio" if damage == "not audio" else "0.50 s long") in end["message"]
    assert "continue another track" in end["hint"].lower()
    assert files_of(daemon, track_id) == []
    assert daemon.call("ping")["result"]["status"] == "ok"


def test_cancel_during_a_continuation_leaves_no_file(daemon):
    source = finished(daemon, prompt="slow ambient", duration_sec=5, seed=51)
    reply = daemon.call("generate", backend="musicgen", prompt="slow ambient", duration_sec=30, seed=52,
                        continue_from=source["track_id"])
    track_id = reply["result"]["track_id"]
    wait_until(lambda: daemon.notifications("generation_progress", track_id=track_id, phase="tokens"), 300,
               "token progress")
    assert daemon.call("cancel", track_id=track_id)["result"]["was_generating"] is True
    end = daemon.wait_terminal(track_id, timeout=60)
    assert end["method"] == "generation_cancelled"
    # The whole 5 s source is the prompt (a third of 30 s is more than it has): 1503 - 250 tokens.
    assert end["total_steps"] == 1253
    assert files_of(daemon, track_id) == []


def test_the_radio_flows_on_musicgen_joining_each_track_where_its_continuation_begins(tmp_path, tiny_checkpoint):
    cache, cap = tmp_path / "cache", tmp_path / "radio.f32"
    make_backend(cache, tiny_checkpoint)
    env = {**DAEMON_ENV, "LOFI_PLAYER_SINK": f"capture {cap} 2", "LOFI_PLAYBACK": "local"}
    with Daemon.start(cache, env) as d:
        reply = d.call("radio_start", prompt="warm tape jazz", backend="musicgen", duration_sec=5,
                       bridge="none")["result"]
        assert reply["mode"] == "flow"  # chosen because musicgen continues audio
        first = reply["first_track_id"]

        def second_heard():
            started = [s for s in d.notifications("playback_state") if s["track_id"] not in (None, first)]
            return started[0]["track_id"] if started else None

        second = wait_until(second_heard, 400, "the radio's second track playing")
        size = wait_until(lambda: cap.stat().st_size, 10, "captured sound")
        wait_until(lambda: cap.stat().st_size > size + 2 * RATE * 8, 60, "two more seconds heard")
        d.call("radio_stop")
        tracks = {t["track_id"]: t for t in d.call("list_tracks")["result"]["tracks"]}
    meta = tracks[second].get("meta") or sidecar(tracks[second]["path"])
    assert meta["continues"] == first
    join = meta["join_frame"]
    a, b = read_track(tracks[first]["path"]), read_track(tracks[second]["path"])
    out = read_pcm(cap)
    # Find the second track's part from join_frame in what was heard; compare exactly where the
    # limiter is the identity (below -1 dBFS).
    quiet_b = np.all(np.abs(b[join:join + 2000]) < KNEE, axis=1)
    anchor = int(np.flatnonzero(quiet_b)[0])
    hits = [c - anchor for c in np.flatnonzero(np.all(out == b[join + anchor], axis=1))
            if c >= anchor and np.array_equal(out[c - anchor:c - anchor + 2000][quiet_b],
                                              b[join:join + 2000][quiet_b])]
    assert hits, "the continuation's new part was not heard from its join_frame"
    i = hits[0]
    # Right before it: the first track's very last samples (no crossfade between unrelated pieces).
    quiet_a = np.all(np.abs(a[-2000:]) < KNEE, axis=1)
    assert quiet_a.mean() > 0.5
    np.testing.assert_array_equal(out[i - 2000:i][quiet_a], a[-2000:][quiet_a])
