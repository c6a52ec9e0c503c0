"""Sinks are foreign programs: their words are capped, their processes end as a group.

Real sinks as commands through the real daemon and worker: a player that writes one 8 MB
stderr line and exits, a wrapper that starts a child and then hangs, a wrapper that exits and
leaves a child running. The daemon lives on, every message stays small, no child is left.
"""

from __future__ import annotations

import json
import random
import shlex
import sys
import time
from pathlib import Path

from playback_helpers import generate, playback, start, wait_until

MESSAGE_BUDGET = 8 * 1024  # a playback_error line, everything included


def running_with(marker: str) -> list[int]:
    """Live processes (not zombies) whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def error_lines(d) -> list[bytes]:  # type: ignore[no-untyped-def]
    return [line for line in d.raw_lines if b'"playback_error"' in line]


def test_one_huge_stderr_line_reaches_clients_once_and_capped(cache_dir, tmp_path):
    script = "import sys; sys.stderr.write('audio open error: ' + 'E' * 8_000_000 + '\\n'); sys.exit(3)"
    sink = f"{shlex.quote(sys.executable)} -c {shlex.quote(script)}"
    with start(cache_dir, sink) as d:
        track = generate(d, "rainy jazz", 5)
        d.call("play", track_id=track["track_id"])
        error = d.wait_for("playback_error", timeout=30)
        assert d.call("ping")["result"]["status"] == "ok"
        state = d.call("get_playback")
    assert "audio open error: EEEE" in error["message"] and "characters, cut" in error["message"]
    assert "exit code 3" in error["message"] and "stderr" not in error
    assert all(len(line) <= MESSAGE_BUDGET for line in error_lines(d))
    # What get_playback keeps is the same capped error: asking for it cannot flood a client.
    assert len(json.dumps(state)) <= MESSAGE_BUDGET
    assert "characters, cut" in state["result"]["last_error"]["message"]


def test_a_hung_wrapper_sink_is_ended_with_its_children(cache_dir, tmp_path):
    marker = f"41.{random.randrange(10**6):06d}"  # sleep takes seconds with decimals: a unique name
    with start(cache_dir, f"sh -c 'sleep {marker}; cat'") as d:  # never reads its stdin
        track = generate(d, "rainy jazz", 5)
        d.call("play", track_id=track["track_id"])
        wait_until(lambda: running_with(f"sleep {marker}"), 20, "the sink's child running")
        error = d.wait_for("playback_error", timeout=30)
        assert "stopped reading audio" in error["message"] and "hung" in error["message"]
        # The group is killed before the error is sent, so nothing of it may still run now.
        assert running_with(f"sleep {marker}") == []
        assert d.call("ping")["result"]["status"] == "ok"


def test_a_wrapper_sink_that_exits_leaves_no_child_behind(cache_dir, tmp_path):
    marker = f"42.{random.randrange(10**6):06d}"
    with start(cache_dir, f"sh -c 'sleep {marker} <&- & echo \"no device\" >&2; exit 4'") as d:
        track = generate(d, "rainy jazz", 5)
        d.call("play", track_id=track["track_id"])
        error = d.wait_for("playback_error", timeout=30)
        assert "exit code 4" in error["message"] and "no device" in error["message"]
        deadline = time.monotonic() + 5  # the worker closes the failed sink right after it reports
        while running_with(f"sleep {marker}") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert running_with(f"sleep {marker}") == []
        assert playback(d)["state"] == "stopped"


def test_a_sink_closed_after_playback_takes_its_children_with_it(cache_dir, tmp_path):
    marker = f"43.{random.randrange(10**6):06d}"
    # A wrapper that plays (cat drains stdin) with a helper beside it that would outlive it.
    with start(cache_dir, f"sh -c 'sleep {marker} & exec cat > /dev/null'") as d:
        track = generate(d, "rainy jazz", 5)
        d.call("play", track_id=track["track_id"])
        wait_until(lambda: running_with(f"sleep {marker}") and playback(d)["position_sec"] > 0.2, 20, "playing")
        d.call("stop")
        # Stopped, the sink is closed after IDLE_CLOSE_SEC (2 s) with everything it started.
        wait_until(lambda: not running_with(f"sleep {marker}"), 20, "the helper ended with its sink")
        assert d.notifications("playback_error") == []
