"""Helpers for the playback tests: a daemon with a chosen sink, captured PCM, silence runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from daemon_client import Daemon
from waiting import wait_until  # noqa: F401 - the tests here import it from this module

RATE = 48_000
GAP_FRAMES = int(0.005 * RATE)  # digital silence longer than 5 ms is a gap
PACED_DAEMON = Path(__file__).with_name("paced_daemon.py")


def daemon_env(cache_dir: Path, sink: str, **extra: str) -> dict[str, str]:
    env = {"LOFI_PLAYER_SINK": sink, "LOFI_PLAYBACK": "local"}  # local: also when the tests run over ssh
    env.update(extra)
    return env


def start(cache_dir: Path, sink: str, *, paced_sec: float | None = None, **extra: str) -> Daemon:
    env = daemon_env(cache_dir, sink, **extra)
    if paced_sec is None:
        return Daemon.start(cache_dir, env)
    full = {**os.environ, "LOFI_CACHE_DIR": str(cache_dir), "LOFI_CONFIG_DIR": str(Path(cache_dir) / "config"),
            "PYTHONUNBUFFERED": "1", "LOFI_TEST_GENERATION_SEC": str(paced_sec), **env}
    proc = subprocess.Popen([sys.executable, str(PACED_DAEMON)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=open(Path(cache_dir).parent / "daemon.stderr", "ab"), env=full)
    return Daemon(proc)


def generate(d: Daemon, prompt: str, seconds: float = 5, seed: int = 1, **extra: Any) -> dict[str, Any]:
    reply = d.call("generate", prompt=prompt, duration_sec=seconds, seed=seed, **extra)
    assert "result" in reply, reply
    done = d.wait_terminal(reply["result"]["track_id"], timeout=180)
    assert done["method"] == "generation_complete", done
    return done


def read_pcm(path: Path) -> np.ndarray:
    data = np.fromfile(path, dtype="<f4")
    return data[: data.size - data.size % 2].reshape(-1, 2)


def read_track(path: str) -> np.ndarray:
    import soundfile as sf

    data, rate = sf.read(path, dtype="float32", always_2d=True)
    assert rate == RATE
    return data


def silent_runs(x: np.ndarray, min_frames: int = GAP_FRAMES) -> list[tuple[int, int]]:
    """(start, length) of every run of exact zeros on both channels at least ``min_frames`` long."""
    silent = np.all(x == 0.0, axis=1).astype(np.int8)
    edges = np.diff(np.concatenate([[0], silent, [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(int(s), int(e - s)) for s, e in zip(starts, ends) if e - s >= min_frames]


def sound_span(x: np.ndarray) -> tuple[int, int]:
    """First and last non-silent frame."""
    loud = np.flatnonzero(np.any(x != 0.0, axis=1))
    return int(loud[0]), int(loud[-1])


def playback(d: Daemon) -> dict[str, Any]:
    reply = d.call("get_playback")
    assert "result" in reply, reply
    return reply["result"]


def command_applied(d: Daemon, cmd: str, after_id: int = -1) -> dict[str, Any]:
    """Wait until the worker reports ``cmd`` applied; returns its frames (in the sink's count)."""
    def check() -> Any:
        last = playback(d).get("last_command")
        return last if last and last["cmd"] == cmd and (last.get("id") or 0) > after_id else None
    return wait_until(check, 30, f"{cmd} applied")
