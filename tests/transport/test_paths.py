"""Where the socket lives, and the private folder around it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lofi_daemon.transport.paths import UnsafeSocketDir, cache_tag, default_socket_path, ensure_private_dir


def test_the_runtime_dir_holds_the_default_socket(tmp_path):
    assert default_socket_path(Path("/c"), {"XDG_RUNTIME_DIR": str(tmp_path)}) == tmp_path / "lofi.nvim" / "daemon.sock"


def test_a_custom_cache_gets_its_own_daemon(tmp_path):
    one = default_socket_path(Path("/a"), {"XDG_RUNTIME_DIR": str(tmp_path), "LOFI_CACHE_DIR": "/a"})
    two = default_socket_path(Path("/b"), {"XDG_RUNTIME_DIR": str(tmp_path), "LOFI_CACHE_DIR": "/b"})
    assert one != two and one.name == f"daemon-{cache_tag('/a')}.sock"


def test_without_a_runtime_dir_the_socket_is_under_the_cache_or_tmp_when_too_long():
    assert default_socket_path(Path("/c"), {}) == Path("/c/run/daemon.sock")
    long_cache = Path("/" + "x" * 120)
    assert default_socket_path(long_cache, {}).parent.name == f"lofi.nvim-{os.getuid()}"


def test_lofi_socket_wins():
    assert default_socket_path(Path("/c"), {"LOFI_SOCKET": "/s/d.sock", "XDG_RUNTIME_DIR": "/tmp"}) == Path("/s/d.sock")


def test_a_private_folder_is_created_0700_and_a_symlink_is_refused(tmp_path):
    ensure_private_dir(tmp_path / "run")
    assert (tmp_path / "run").stat().st_mode & 0o777 == 0o700
    (tmp_path / "link").symlink_to(tmp_path / "run")
    with pytest.raises(UnsafeSocketDir, match="not a plain directory"):
        ensure_private_dir(tmp_path / "link")


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to make a folder owned by another user (CI runs as root)")
def test_a_folder_owned_by_someone_else_is_refused(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)
    with pytest.raises(UnsafeSocketDir, match="belongs to uid 65534"):
        ensure_private_dir(theirs)
