"""Where the daemon's socket lives, and making its directory private.

Default: ``$XDG_RUNTIME_DIR/lofi.nvim/daemon.sock`` (on macOS ``$TMPDIR/lofi.nvim/``, which is
per-user there); without a runtime dir, ``<cache dir>/run/daemon.sock``. A custom
``LOFI_CACHE_DIR`` gets its own daemon: the name becomes ``daemon-<12 hex of sha256(abs
cache path)>.sock``, so two caches never share a daemon. ``LOFI_SOCKET`` overrides it all.
A path too long for ``sun_path`` falls back to ``/tmp/lofi.nvim-<uid>/``.

lua/lofi/daemon.lua computes the same path; tests/transport/test_paths.py keeps them equal.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import Mapping

MAX_SOCKET_PATH_BYTES = 100  # sun_path is 108 bytes on Linux, 104 on macOS
SUN_PATH_BYTES = 104 if sys.platform == "darwin" else 108  # including the final NUL


class UnsafeSocketDir(OSError):
    """The socket directory is not ours alone (wrong owner, a symlink, not a directory)."""


class SocketPathTooLong(ValueError):
    """An explicit socket path that does not fit ``sun_path``."""


def check_socket_path(path: Path) -> None:
    size = len(os.fsencode(path))
    if size >= SUN_PATH_BYTES:
        raise SocketPathTooLong(f"the socket path {path} is {size} bytes; a unix socket path has at most "
                                f"{SUN_PATH_BYTES - 1}")


def cache_tag(cache_dir: str) -> str:
    return hashlib.sha256(os.path.abspath(cache_dir).encode("utf-8")).hexdigest()[:12]


def socket_name(env: Mapping[str, str]) -> str:
    custom = env.get("LOFI_CACHE_DIR")
    return f"daemon-{cache_tag(custom)}.sock" if custom else "daemon.sock"


def default_socket_path(cache_dir: Path, env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("LOFI_SOCKET"):
        return Path(env["LOFI_SOCKET"])
    name = socket_name(env)
    runtime = env.get("XDG_RUNTIME_DIR") or (env.get("TMPDIR") if sys.platform == "darwin" else None)
    if runtime and os.path.isabs(runtime) and os.path.isdir(runtime):
        path = Path(runtime) / "lofi.nvim" / name
    else:
        path = Path(os.path.abspath(cache_dir)) / "run" / name
    if len(os.fsencode(path)) > MAX_SOCKET_PATH_BYTES:
        path = Path(tempfile.gettempdir()) / f"lofi.nvim-{os.getuid()}" / name
    return path


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` 0700, or check that the existing one is a real directory owned by us.

    The final component is opened with O_NOFOLLOW: a symlink planted there (e.g. in /tmp)
    is refused, never followed. A group/world bit on our own directory is removed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:  # ELOOP (a symlink) or ENOTDIR (a file)
        raise UnsafeSocketDir(exc.errno, f"{path} is not a plain directory ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.getuid():
            raise UnsafeSocketDir(f"{path} belongs to uid {st.st_uid}, not to this user ({os.getuid()})")
        if stat.S_IMODE(st.st_mode) & 0o077:
            os.fchmod(fd, 0o700)
    finally:
        os.close(fd)
