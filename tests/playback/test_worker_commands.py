"""The playback worker process on its own pipe: a malformed value is an error, never its end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

from playback_helpers import RATE, read_pcm


def test_non_finite_and_non_numeric_values_are_refused_and_the_music_goes_on(tmp_path):
    from lofi_daemon import audio

    track = tmp_path / "tone.wav"
    t = np.arange(RATE) / RATE
    mono = 0.3 * np.sin(2 * np.pi * 220 * t)
    track.write_bytes(audio.encode(np.stack([mono, mono]).astype(np.float32), RATE, "wav"))
    cap = tmp_path / "out.f32"
    env = {**os.environ, "LOFI_PLAYER_SINK": f"capture {cap} 1"}
    worker = subprocess.Popen([sys.executable, "-m", "lofi_daemon.playback.worker"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, env=env)
    assert worker.stdin is not None and worker.stdout is not None

    def send(line: str) -> None:
        worker.stdin.write(line.encode() + b"\n")
        worker.stdin.flush()

    try:
        send(json.dumps({"cmd": "play", "track_id": "a", "path": str(track), "loopable": True}))
        send('{"cmd": "volume", "volume": NaN}')  # Python's json reads NaN and Infinity
        send('{"cmd": "seek", "position_sec": Infinity}')
        send('{"cmd": "crossfade", "sec": "soon"}')
        send('{"cmd": "seek", "position_sec": [1]}')
        send(json.dumps({"cmd": "state"}))
        errors, state = [], None
        deadline = time.monotonic() + 30
        while state is None and time.monotonic() < deadline:
            event = json.loads(worker.stdout.readline())
            if event["event"] == "command_error":
                errors.append(event["message"])
            elif event["event"] == "applied" and event["cmd"] == "state":
                state = event
        assert len(errors) == 4, errors
        assert any("nan" in e.lower() for e in errors) and any("inf" in e.lower() for e in errors)
        time.sleep(0.5)
        assert worker.poll() is None  # alive, and still playing at the volume it had
        send(json.dumps({"cmd": "quit"}))
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
    pcm = read_pcm(cap)
    assert np.all(np.isfinite(pcm)) and pcm.shape[0] > RATE // 4
    assert abs(float(np.abs(pcm[RATE // 8:]).max()) - 0.3) < 0.01
