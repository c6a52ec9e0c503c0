"""Start the real daemon with the paced stand-in backend; read what the radio did."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from daemon_client import Daemon
from playback_helpers import playback, wait_until

HERE = Path(__file__).resolve().parent


def start_stand_in(cache_dir: Path, sink: str, *, pace_sec: float, caps: str = "continue,windows",
                   decode_share: float = 0.2) -> Daemon:
    env = {**os.environ, "LOFI_CACHE_DIR": str(cache_dir), "LOFI_CONFIG_DIR": str(Path(cache_dir) / "config"),
           "PYTHONUNBUFFERED": "1", "LOFI_PLAYER_SINK": sink, "LOFI_PLAYBACK": "local",
           "LOFI_TEST_GENERATION_SEC": str(pace_sec), "LOFI_TEST_STAND_IN_CAPS": caps,
           "LOFI_TEST_DECODE_SHARE": str(decode_share),
           "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, str(HERE / "stand_in_daemon.py")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=open(Path(cache_dir).parent / "daemon.stderr", "ab"),
                            env=env)
    return Daemon(proc)


def track_changes(d: Daemon) -> list[str]:
    ids: list[str] = []
    for state in d.notifications("playback_state"):
        if state["track_id"] and (not ids or ids[-1] != state["track_id"]):
            ids.append(state["track_id"])
    return ids


def stopped_clean(d: Daemon, tracks_dir: Path) -> dict[str, Any]:
    """After a stop: no job left, nothing playing, no file but finished tracks."""
    state = wait_until(lambda: (s := playback(d))["state"] == "stopped" and not s["radio"] and s, 15, "stopped")
    status = wait_until(lambda: (s := d.call("get_status")["result"])["current"] is None and not s["queue"] and s,
                        15, "an empty queue")
    listed = {t["track_id"] for t in d.call("list_tracks")["result"]["tracks"]}
    on_disk = {p.name.split(".")[0] for p in tracks_dir.iterdir()} if tracks_dir.exists() else set()
    strays = {name for name in on_disk if name not in listed}
    return {"state": state, "status": status, "strays": strays, "listed": listed}
