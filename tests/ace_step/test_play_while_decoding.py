"""ACE-Step v1 plays while it decodes, through a real ``lofi-daemon`` and a capture sink.

The tiny golden-fixture checkpoint (``LOFI_ACESTEP_DIR``) with the default window plan: a
60 s track decodes in 3 windows of ~20 s, a 240 s one in 11. ``generate`` with ``play``
streams the windows to the player as they are decoded (playback/live.py); the file written
must be the one a plain run writes, bit for bit.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from daemon_client import Daemon
from waiting import wait_until

PROMPT = "lo-fi hip hop, mellow piano, vinyl crackle, 80 bpm, relaxed"
RATE = 48_000


def _start(tmp: Path, checkpoint: Path, capture: Path) -> Daemon:
    env = {"LOFI_ACESTEP_DIR": str(checkpoint), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "LOFI_PLAYER_SINK": f"capture {capture} 1", "LOFI_PLAYBACK": "local"}
    return Daemon.start(tmp / "cache", env)


def _generate(d: Daemon, seconds: float, **extra) -> str:
    reply = d.call("generate", prompt=PROMPT, duration_sec=seconds, backend="ace_step", seed=21,
                   inference_steps=1, **extra)
    assert "result" in reply, reply
    return reply["result"]["track_id"]


def _index(d: Daemon, pred) -> int:
    return next(i for i, m in enumerate(list(d.messages)) if isinstance(m, dict) and pred(m))


def _playing(track_id: str):
    return lambda m: (m.get("method") == "playback_state" and m["params"].get("track_id") == track_id
                      and m["params"].get("state") == "playing")


def _read_pcm(path: Path) -> np.ndarray:
    data = np.fromfile(path, dtype="<f4")
    return data[: data.size - data.size % 2].reshape(-1, 2)


def test_a_track_played_while_it_decodes_is_heard_before_its_file_exists_and_the_file_is_unchanged(
        tmp_path, acestep_checkpoint):
    capture = tmp_path / "heard.f32"
    with _start(tmp_path, acestep_checkpoint, capture) as d:
        track_id = _generate(d, 60, play=True)
        done = d.wait_terminal(track_id, 300)
        assert done["method"] == "generation_complete", done
        # It was playing before the decode was over (the player got the first window, not the file).
        assert _index(d, _playing(track_id)) < _index(d, lambda m: m.get("method") == "generation_complete")
        wait_until(lambda: capture.exists() and capture.stat().st_size >= 3 * RATE * 8, 60, "three seconds heard")
        d.call("stop")
        streamed = Path(done["path"]).read_bytes()
        # The same request again, nobody listening: the same file.
        assert "result" in d.call("delete_track", track_id=track_id)
        again = _generate(d, 60)
        plain = d.wait_terminal(again, 300)
        assert plain["method"] == "generation_complete", plain
        assert hashlib.sha256(Path(plain["path"]).read_bytes()).hexdigest() == hashlib.sha256(streamed).hexdigest()
    # What was heard is the track (the file is 16-bit: equal to its quantization step).
    heard = _read_pcm(capture)
    begin = int(np.flatnonzero(np.any(heard != 0, axis=1))[0])
    source, rate = sf.read(plain["path"], dtype="float32", always_2d=True)
    assert rate == RATE
    edge, span = int(0.03 * RATE), 2 * RATE  # past the file's 5 ms fade and the player's 20 ms ramp
    np.testing.assert_allclose(heard[begin + edge:begin + span], source[edge:span], atol=2 / 32768)


def test_cancel_while_it_plays_and_decodes_leaves_no_file_and_no_sound(tmp_path, acestep_checkpoint):
    capture = tmp_path / "heard.f32"
    with _start(tmp_path, acestep_checkpoint, capture) as d:
        track_id = _generate(d, 240, play=True)  # 11 decode windows: the first plays long before the last
        wait_until(lambda: any(_playing(track_id)(m) for m in list(d.messages) if isinstance(m, dict)), 300,
                   "the first window playing")
        assert d.call("cancel", track_id=track_id)["result"]["was_generating"] is True
        end = d.wait_terminal(track_id, 120)
        assert end["method"] == "generation_cancelled", end
        assert 0 < end["at_step"] < end["total_steps"]  # inside the decode (counted in decode units)
        wait_until(lambda: d.call("get_playback")["result"]["state"] == "stopped", 20, "the player stopped")
        listed = {t["track_id"] for t in d.call("list_tracks")["result"]["tracks"]}
        tracks_dir = tmp_path / "cache" / "tracks"
        on_disk = [p.name for p in tracks_dir.iterdir()] if tracks_dir.exists() else []
    assert track_id not in listed
    assert not [name for name in on_disk if name.startswith(track_id)]
