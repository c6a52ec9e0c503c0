"""kill -9 anywhere in the write path leaves a whole library: every listed track decodes and
matches its sidecar's hash, and no orphan audio or temp file remains after a restart.

A real child process commits short tracks through ``TrackLibrary.save`` in a loop and is
killed with a real SIGKILL: either by itself at an exact point (just before or after one of
its ``os.replace``/``os.fsync`` calls, e.g. between the audio and the sidecar rename), or by
this test at a random moment. "Restart" is a new ``TrackLibrary`` on the same folder, which
is what a daemon or the CLI builds at start.
"""

from __future__ import annotations

import hashlib
import random
import signal
import subprocess
import sys
from pathlib import Path

from lofi_daemon import audio
from lofi_daemon.tracks import TrackLibrary

WRITER = r"""
import hashlib, os, random, signal, sys, time
import numpy as np
from pathlib import Path
from lofi_daemon import audio
from lofi_daemon.tracks import TrackLibrary

root, point = Path(sys.argv[1]), sys.argv[2]
if point != "random":
    when, name, nth = point.split(":")  # e.g. after:replace:3
    real, count = getattr(os, name), [0]
    def hooked(*args, **kwargs):
        count[0] += 1
        if when == "before" and count[0] == int(nth):
            os.kill(os.getpid(), signal.SIGKILL)
        result = real(*args, **kwargs)
        if when == "after" and count[0] == int(nth):
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    setattr(os, name, hooked)
lib = TrackLibrary(root)
rng = random.Random(os.getpid())
print("ready", flush=True)
while True:
    n = 4800 * rng.randint(1, 6)
    pcm = (0.3 * np.sin(np.arange(n) * rng.uniform(0.01, 0.1))).astype(np.float32)
    data = audio.encode(np.stack([pcm, pcm]), 48000, "wav")
    track_id = "t%012x" % rng.getrandbits(48)
    lib.save(track_id, data, "wav", {"prompt": "kill test", "created_at": time.time(),
                                     "sha256": hashlib.sha256(data).hexdigest()})
"""

INJECTED = [f"{when}:{name}:{nth}" for when in ("before", "after") for name in ("replace", "fsync")
            for nth in (1, 2, 3, 4)]


def check_whole(root: Path) -> int:
    """Restart on ``root`` and check the invariant; returns how many tracks are listed."""
    lib = TrackLibrary(root)
    listed = lib.list()
    for track in listed:
        samples, rate = audio.read(track.path)
        assert rate == 48000 and samples.shape[0] == 2 and samples.shape[1] > 0
        assert hashlib.sha256(track.path.read_bytes()).hexdigest() == track.meta["sha256"], track.track_id
    expected = {f"{t.track_id}.wav" for t in listed} | {f"{t.track_id}.json" for t in listed}
    assert {p.name for p in root.iterdir()} == expected, "orphan or temp file left after restart"
    return len(listed)


def test_at_least_30_kill_9s_over_the_write_path_leave_a_whole_library(tmp_path):
    root = tmp_path / "tracks"
    root.mkdir()
    rng = random.Random(1234)
    points = INJECTED + ["random"] * 16
    committed = 0
    for point in points:
        child = subprocess.Popen([sys.executable, "-c", WRITER, str(root), point],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert child.stdout is not None
        ready = child.stdout.readline()
        if point == "random":
            assert ready == b"ready\n", child.stderr.read() if child.stderr else ""
            try:
                child.wait(timeout=rng.uniform(0.0, 0.4))
            except subprocess.TimeoutExpired:
                child.send_signal(signal.SIGKILL)
        returncode = child.wait(timeout=120)
        assert returncode == -signal.SIGKILL, (point, returncode, child.stderr.read() if child.stderr else "")
        committed = check_whole(root)
    assert len(points) >= 30
    assert committed > 0  # the trials did commit tracks, so the check above had something to check
