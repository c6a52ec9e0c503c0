"""Drive a real ``lofi-daemon --socket`` over real unix-socket connections.

    with SharedDaemon.start(tmp) as daemon:
        with daemon.client() as a, daemon.client() as b:
            track = a.call("generate", prompt="rain", duration_sec=5, seed=1)["result"]["track_id"]
            b.wait_terminal(track)
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

TERMINAL = ("generation_complete", "generation_error", "generation_cancelled")


def short_tmp() -> Path:
    """A short private folder: a socket path must fit in sun_path (~100 bytes)."""
    return Path(tempfile.mkdtemp(prefix="lofi-t-"))


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def daemon_pids(socket_path: Path) -> list[int]:
    """Live lofi-daemon processes serving ``socket_path`` (by command line)."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"lofi_daemon" in argv and os.fsencode(socket_path) in argv and state != "Z":
            out.append(int(proc.name))
    return out


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


class SocketClient:
    def __init__(self, path: Path, *, read: bool = True) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(os.fsencode(path))
        self._next_id = 0
        self._lock = threading.Condition()
        self.messages: list[Any] = []
        self._pending: list[Any] = []
        self.eof = threading.Event()
        if read:
            threading.Thread(target=self._read, daemon=True).start()

    def __enter__(self) -> "SocketClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _read(self) -> None:
        buf = b""
        try:
            while True:
                chunk = self.sock.recv(1 << 16)
                if not chunk:
                    break
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    msg = json.loads(line)  # a broken line fails the test that reads it
                    with self._lock:
                        self.messages.append(msg)
                        self._pending.append(msg)
                        self._lock.notify_all()
        except (OSError, ValueError):
            pass
        finally:
            self.eof.set()
            with self._lock:
                self._lock.notify_all()

    def send(self, method: str, params: dict[str, Any] | None = None) -> int:
        self._next_id += 1
        msg = {"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params or {}}
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        return self._next_id

    def call(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        req_id = self.send(method, params)
        return self._wait(lambda m: "method" not in m and m.get("id") == req_id, timeout, f"reply to {method}")

    def wait_for(self, method: str, timeout: float = 60.0, **match: Any) -> dict[str, Any]:
        return self._wait(lambda m: m.get("method") == method
                          and all(m["params"].get(k) == v for k, v in match.items()), timeout, method)["params"]

    def wait_terminal(self, track_id: str, timeout: float = 120.0) -> dict[str, Any]:
        msg = self._wait(lambda m: m.get("method") in TERMINAL and m["params"].get("track_id") == track_id,
                         timeout, f"end of {track_id}")
        return {"method": msg["method"], **msg["params"]}

    def notifications(self, method: str) -> list[dict[str, Any]]:
        with self._lock:
            return [m["params"] for m in self.messages if m.get("method") == method]

    def _wait(self, pred: Any, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for i, msg in enumerate(self._pending):
                    if isinstance(msg, dict) and pred(msg):
                        return self._pending.pop(i)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {what} within {timeout} s; last: {self.messages[-3:]}")
                if self.eof.is_set():
                    raise ConnectionError(f"the daemon closed the connection while waiting for {what}")
                self._lock.wait(min(left, 0.5))

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class SharedDaemon:
    """A ``lofi-daemon --socket PATH`` process with a private cache."""

    def __init__(self, proc: subprocess.Popen[bytes], path: Path, cache: Path) -> None:
        self.proc = proc
        self.path = path
        self.cache = cache

    @staticmethod
    def env(cache: Path) -> dict[str, str]:
        return {**os.environ, "LOFI_CACHE_DIR": str(cache), "LOFI_CONFIG_DIR": str(cache / "config"),
                "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}

    @classmethod
    def start(cls, root: Path, *args: str, idle_exit_sec: float = 30.0) -> "SharedDaemon":
        cache = root / "cache"
        path = root / "run" / "daemon.sock"
        proc = subprocess.Popen([sys.executable, "-m", "lofi_daemon", "--socket", str(path),
                                 "--idle-exit-sec", str(idle_exit_sec), *args],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=open(root / "daemon.stderr", "ab"), env=cls.env(cache))
        daemon = cls(proc, path, cache)
        wait_until(daemon.listening, 60, f"the daemon to listen on {path}")
        return daemon

    def listening(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"the daemon exited with {self.proc.returncode}: {self.log()[-2000:]}")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(os.fsencode(self.path))
            return True
        except OSError:
            return False
        finally:
            probe.close()

    def client(self, **kw: Any) -> SocketClient:
        return SocketClient(self.path, **kw)

    def log(self) -> str:
        path = self.cache / "logs" / "daemon.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> "SharedDaemon":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
