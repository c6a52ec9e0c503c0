"""The life lock: the daemon serving a socket path holds an flock on ``<socket>.lock``.

The kernel drops the lock when the process dies (kill -9 included), so "lock free" means
"no daemon": a socket file left behind is stale and may be replaced. Two daemons started
at the same instant cannot both hold it.
"""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path


class UnsafeLockPath(OSError):
    """Something other than a plain file of ours sits at a lock path (a directory, symlink, FIFO)."""


def _open_lock_file(path: Path) -> int:
    """The lock file, created 0600; never through a symlink, never blocking on a FIFO."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
    except OSError as exc:  # EISDIR (a directory), ELOOP (a symlink)
        raise UnsafeLockPath(exc.errno, f"{path} is not a plain file ({exc.strerror})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
        os.close(fd)
        kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "not a regular file" if not stat.S_ISREG(st.st_mode) \
            else f"owned by uid {st.st_uid}"
        raise UnsafeLockPath(f"{path} is {kind}")
    return fd


def lock_path(socket_path: Path) -> Path:
    return socket_path.with_name(socket_path.name + ".lock")


class LifeLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        fd = _open_lock_file(self.path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def holder_pid(self) -> int | None:
        try:
            return int(self.path.read_text().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


class SpawnLock:
    """Clients take this (blocking) before starting a daemon, so only the first one starts it."""

    def __init__(self, socket_path: Path) -> None:
        self.path = socket_path.with_name(socket_path.name + ".spawn.lock")
        self._fd: int | None = None

    def __enter__(self) -> "SpawnLock":
        self._fd = _open_lock_file(self.path)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
