"""The radio on ``ace_step_15`` through the real daemon and the capture sink: flow joins continuations."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
from daemon_client import Daemon

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "playback"))  # capture-sink helpers
from playback_helpers import RATE, read_pcm, read_track, wait_until  # noqa: E402

KNEE = 10 ** (-1 / 20)  # the mixer's safety limiter leaves samples below -1 dBFS untouched


def _ai_tracks_played(d: Daemon, first_ai: str) -> list[str]:
    ids: list[str] = []
    for state in d.notifications("playback_state"):
        tid = state["track_id"]
        if tid and (not ids or ids[-1] != tid) and (ids or tid == first_ai):
            ids.append(tid)
    return ids


def test_the_radio_flows_each_ace_step_15_track_into_the_next_where_its_new_part_begins(installed_cache, tmp_path):
    cache, cap = tmp_path / "cache", tmp_path / "radio.f32"
    shutil.copytree(installed_cache / "models", cache / "models")
    env = {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "LOFI_PLAYBACK": "local",
           "LOFI_PLAYER_SINK": f"capture {cap} 4"}  # 4x real time: 10 s tracks pass in 2.5 s
    with Daemon.start(cache, env) as d:
        reply = d.call("radio_start", prompt="lo-fi hip hop, mellow piano", backend="ace_step_15", duration_sec=10,
                       params={"inference_steps": 2}, bridge="procedural", timeout=60)["result"]
        assert reply["mode"] == "flow"  # chosen by itself: the backend continues audio
        first_ai = reply["first_track_id"]
        wait_until(lambda: len(_ai_tracks_played(d, first_ai)) >= 3, 240, "three ACE-Step 1.5 tracks played")
        d.call("radio_stop")
        tracks = {t["track_id"]: t for t in d.call("list_tracks")["result"]["tracks"]}
    first, second = _ai_tracks_played(d, first_ai)[:2]
    sidecar = json.loads(Path(tracks[second]["path"]).with_suffix(".json").read_text())
    assert sidecar["continues"] == first and sidecar["join_frame"] == 125 * 1920  # half of 10 s, whole latents
    out, a, b = read_pcm(cap), read_track(tracks[first]["path"]), read_track(tracks[second]["path"])
    join = sidecar["join_frame"]
    # Where the second track's new part was heard: its samples from join_frame, exactly (compared
    # where they are below the limiter's knee) ...
    quiet_b = np.all(np.abs(b[join:join + 2000]) < KNEE, axis=1)
    anchor = int(np.flatnonzero(quiet_b)[0])
    hits = [c - anchor for c in np.flatnonzero(np.all(out == b[join + anchor], axis=1))
            if c >= anchor and np.array_equal(out[c - anchor:c - anchor + 2000][quiet_b], b[join:join + 2000][quiet_b])]
    assert hits, "the second track's new part was not heard as it is in its file"
    i = hits[0]
    # ... and before it the first track's own end, up to the lead-in, over which the worker moves
    # from it into the second's head (its crossfade into the decode: the first file ends in the
    # writer's fade to zero, the decode at join_frame does not) ...
    lead = sidecar["lead_in_frames"]
    assert lead == 12_000 < join  # the head's 0.25 s crossfade into the decode
    quiet_a = np.all(np.abs(a[-lead - 2000:-lead]) < KNEE, axis=1)
    assert quiet_a.mean() > 0.5  # enough of it to compare
    np.testing.assert_array_equal(out[i - lead - 2000:i - lead][quiet_a], a[-lead - 2000:-lead][quiet_a])
    # ... and over the lead-in what was heard moved from the first track's end (which fades to
    # zero) into the second's head, reaching it on the last frame: the head's crossfade ends in
    # the same decode the new part goes on with, so nothing steps at join_frame.
    w = ((np.arange(lead) + 1.0) / lead).astype(np.float32)[:, None]
    moved = a[-lead:] + w * (b[join - lead:join] - a[-lead:])
    quiet = np.all(np.abs(moved) < KNEE, axis=1)
    np.testing.assert_allclose(out[i - lead:i][quiet], moved[quiet], atol=1e-6)
    assert np.abs(a[-1]).max() < 1e-3 < np.abs(b[join - 1]).max()  # the move is what avoids a step
    # The second file's head is the first file's tail (its own 16-bit samples, within one step).
    assert np.abs(b[240:join - 12000] - a[-join:][240:-12000]).max() <= 1.0 / 32767 + 1e-7
