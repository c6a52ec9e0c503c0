"""Drive a real ``lofi-daemon`` process over its stdin/stdout pipes, as the plugin does.

    with Daemon.start(cache_dir) as d:
        reply = d.call("generate", prompt="rain", duration_sec=5, seed=1)
        done = d.wait_for("generation_complete", track_id=reply["result"]["track_id"])
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

TERMINAL = ("generation_complete", "generation_error", "generation_cancelled")


class Daemon:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self._next_id = 0
        self._pending: list[Any] = []  # received, not yet consumed by a wait
        self._arrived = threading.Condition()
        self.messages: list[Any] = []  # everything received, in order
        self.raw_lines: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @classmethod
    def start(cls, cache_dir: Path, extra_env: dict[str, str] | None = None) -> "Daemon":
        env = {**os.environ, "LOFI_CACHE_DIR": str(cache_dir),
               "LOFI_CONFIG_DIR": str(Path(cache_dir) / "config"), "PYTHONUNBUFFERED": "1"}
        env.update(extra_env or {})
        proc = subprocess.Popen([sys.executable, "-m", "lofi_daemon"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=open(Path(cache_dir).parent / "daemon.stderr", "ab"),
                                env=env)
        return cls(proc)

    def __enter__(self) -> "Daemon":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.raw_lines.append(line)
            try:
                msg = json.loads(line)
            except ValueError:
                msg = line  # surfaces as a test failure in whoever reads it
            with self._arrived:
                self.messages.append(msg)
                self._pending.append(msg)
                self._arrived.notify_all()

    # ----- sending ---------------------------------------------------------------------------
    def send_raw(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, method: str, params: dict[str, Any] | None = None, *, id: Any = "auto") -> Any:
        if id == "auto":
            self._next_id += 1
            id = self._next_id
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
        if params is not None:
            msg["params"] = params
        self.send_raw(json.dumps(msg).encode() + b"\n")
        return id

    def call(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        """Send a request and return its whole response (``result`` or ``error``)."""
        req_id = self.send(method, params or None)
        return self.wait_reply(req_id, timeout)

    # ----- receiving -------------------------------------------------------------------------
    def wait_reply(self, req_id: Any, timeout: float = 30.0) -> dict[str, Any]:
        return self._wait(lambda m: isinstance(m, dict) and "method" not in m and m.get("id") == req_id, timeout,
                          f"reply to {req_id}")

    def wait_for(self, method: str, timeout: float = 60.0, **match: Any) -> dict[str, Any]:
        """Params of the first (not yet consumed) notification ``method`` whose params match."""
        msg = self._wait(lambda m: isinstance(m, dict) and m.get("method") == method
                         and all(m["params"].get(k) == v for k, v in match.items()), timeout, method)
        return msg["params"]

    def wait_terminal(self, track_id: str, timeout: float = 120.0) -> dict[str, Any]:
        msg = self._wait(lambda m: isinstance(m, dict) and m.get("method") in TERMINAL
                         and m["params"].get("track_id") == track_id, timeout, f"end of {track_id}")
        return {"method": msg["method"], **msg["params"]}

    def notifications(self, method: str, **match: Any) -> list[dict[str, Any]]:
        """Every notification ``method`` received so far (consumed or not)."""
        return [m["params"] for m in list(self.messages)
                if isinstance(m, dict) and m.get("method") == method
                and all(m["params"].get(k) == v for k, v in match.items())]

    def _wait(self, pred: Any, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for i, msg in enumerate(self._pending):
                    if pred(msg):
                        return self._pending.pop(i)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {what} within {timeout} s; last messages: {self.messages[-5:]}")
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise RuntimeError(f"daemon exited with {self.proc.returncode} while waiting for {what}")
                self._arrived.wait(min(left, 0.5))

    # ----- ending ----------------------------------------------------------------------------
    def close(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
