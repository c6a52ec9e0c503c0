"""A real second daemon standing in for ``ssh gpu-box lofi-daemon --stdio``.

The ``generator`` command runs ``lofi-daemon --stdio`` with its own cache and config dirs (the
"GPU box"), over the same kind of pipe pair ssh gives. ``paced`` makes its procedural backend
take a set wall time in small cancellable steps (tests/playback/paced_daemon.py), so a test can
cancel or kill it mid-job.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from daemon_client import Daemon
from waiting import wait_until  # noqa: F401 - the tests here import it from this module

PACED_DAEMON = Path(__file__).resolve().parents[1] / "playback" / "paced_daemon.py"


def generator_argv(remote_dir: Path, *, paced_sec: float | None = None, protocol: int | None = None) -> list[str]:
    env = [f"LOFI_CACHE_DIR={remote_dir}", f"LOFI_CONFIG_DIR={remote_dir / 'config'}", "PYTHONUNBUFFERED=1"]
    if protocol is not None:  # a real daemon that says it speaks another protocol version
        code = (f"import lofi_daemon; lofi_daemon.PROTOCOL_VERSION = {protocol}; "
                "from lofi_daemon.__main__ import main; main(['--stdio'])")
        return ["env", *env, sys.executable, "-c", code]
    if paced_sec is not None:
        return ["env", *env, f"LOFI_TEST_GENERATION_SEC={paced_sec}", sys.executable, str(PACED_DAEMON), "--stdio"]
    return ["env", *env, sys.executable, "-m", "lofi_daemon", "--stdio"]


def local_daemon(local_dir: Path, argv: list[str], backends: str = "procedural", **env: str) -> Daemon:
    """The laptop's daemon, sending ``backends`` to the generator ``argv``."""
    return Daemon.start(local_dir, {"LOFI_GENERATOR": json.dumps(argv), "LOFI_GENERATOR_BACKENDS": backends, **env})


def remote_pid(local: Daemon) -> int:
    """The generator child of the local daemon (the command as the local daemon started it)."""
    pid = local.call("daemon_info")["result"]["generator"]["pid"]
    assert isinstance(pid, int), pid
    return pid


def kill_9(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def sidecar(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).with_suffix(".json").read_text())
