"""Private files written safely: owned temp files, atomic replaces, bounded reads, and the
clean-up of temps their writers left behind. Shared by the track library, the config and
the model store.

A temp file is ``<final>.<pid>.<random>.tmp``, created with O_EXCL | O_NOFOLLOW (never
through a planted symlink) and ``flock``-ed while its writer lives, so a clean-up can tell a
live writer's file from a dead one's.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import shutil
import stat
import time
from pathlib import Path

TEMP_RE = re.compile(r"(?P<final>.+)\.(?P<pid>\d+)\.(?P<rand>[0-9a-f]+)\.tmp")
STALE_TEMP_SEC = 3600.0  # longer than any write; a temp this old has no live writer
FILE_MODE = 0o600
DIR_MODE = 0o700


class OwnedTemp:
    """A new private file ``<final>.<pid>.<random>.tmp``, flock-ed while its owner lives."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd

    @classmethod
    def create(cls, final: Path) -> "OwnedTemp":
        path = final.with_name(f"{final.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            pass  # a file system without locks: the pid in the name still protects it
        return cls(path, fd)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view[:1 << 22]):]
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def write_private_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` through an owned temp file (never through a symlink)."""
    tmp = OwnedTemp.create(path)
    try:
        tmp.write(data)
        os.replace(tmp.path, path)
    except BaseException:
        tmp.path.unlink(missing_ok=True)
        raise
    finally:
        tmp.close()


class UnsafeFile(ValueError):
    """A file the daemon will not read: not a regular file (a FIFO, device, directory), or too big."""


def open_regular(path: Path, limit: int) -> int:
    """A descriptor on ``path`` once it is known to be a regular file of at most ``limit`` bytes.

    O_NONBLOCK: opening a FIFO never waits for a writer. A symlink is followed (the model
    store links snapshots to blobs), but what it points at must be a regular file too: the
    check is on the opened descriptor, so nothing can be swapped in between.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFile(f"{path} is not a regular file ({_kind(st.st_mode)})")
        if st.st_size > limit:
            raise UnsafeFile(f"{path} has {st.st_size} bytes, more than the {limit} such a file may have")
    except BaseException:
        os.close(fd)
        raise
    return fd


def descriptor_path(fd: int, fallback: Path) -> str:
    """A path that opens exactly the file behind ``fd`` (for libraries that want a name)."""
    proc = f"/proc/self/fd/{fd}"
    return proc if os.path.exists(proc) else str(fallback)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a directory"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return f"mode {mode:o}"


def new_private_dir(parent: Path, prefix: str) -> Path:
    """A fresh 0700 directory ``<parent>/<prefix><random>``: mkdir never follows a planted
    symlink and fails on anything already there, so what we write inside is ours alone."""
    while True:
        path = parent / f"{prefix}{os.getpid()}.{secrets.token_hex(4)}"
        try:
            os.mkdir(path, DIR_MODE)
            return path
        except FileExistsError:
            continue


def write_new_file(path: Path, data: bytes) -> None:
    """Create ``path`` (0600) and write ``data``; never through a symlink, never over a file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view[:1 << 22]):]
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_dir(new: Path, final: Path) -> None:
    """Put the finished directory ``new`` at ``final``. What was there goes: a symlink or file
    is unlinked (its target untouched), an old directory is renamed aside and then removed."""
    try:
        st = os.lstat(final)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        old = final.with_name(f"{final.name}.old.{os.getpid()}.{secrets.token_hex(4)}")
        os.rename(final, old)
        os.rename(new, final)
        shutil.rmtree(old, ignore_errors=True)
        return
    if st is not None:
        os.unlink(final)
    os.rename(new, final)


def read_regular_file(path: Path, limit: int) -> bytes:
    """Read a regular file of at most ``limit`` bytes without blocking on a FIFO or device."""
    fd = open_regular(path, limit)
    try:
        chunks, total = [], 0
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise UnsafeFile(f"{path} grew past {limit} bytes while it was read")
        return b"".join(chunks)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_dead_temps(folder: Path, prefix: str) -> list[Path]:
    """Remove ``<prefix>*.tmp`` files in ``folder`` that no live writer owns."""
    removed = []
    for path in folder.glob(f"{prefix}*.tmp"):
        if temp_is_dead(path) and unlink_if_unlocked(path):
            removed.append(path)
    return removed


def temp_is_dead(path: Path) -> bool:
    """Whether no writer can still own this temp file: its pid is gone, or it is very old."""
    name = path.name
    try:
        age = time.time() - path.lstat().st_mtime
    except OSError:
        return False
    if age > STALE_TEMP_SEC:
        return True
    match = TEMP_RE.fullmatch(name)
    if match is None:
        return False  # not a name we make; only its age can tell
    try:
        os.kill(int(match["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, ValueError):
        return False
    return False


def unlink_if_unlocked(path: Path, unless_exists: Path | None = None) -> bool:
    """Remove ``path`` unless a live writer holds its lock (or ``unless_exists`` appeared)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError:
            pass
        if unless_exists is not None and os.path.lexists(unless_exists):
            return False  # its writer committed after all
        path.unlink(missing_ok=True)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
