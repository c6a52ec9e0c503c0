"""Fixtures for the reliability tests: a canary tree outside the cache, small real file
systems (tmpfs) for full and read-only disks, and a look at a daemon's child processes."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest


def tree_digest(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (files, links, modes) and its content hash."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        st = path.lstat()
        if path.is_symlink():
            out[rel] = "link:" + os.readlink(path)
        elif path.is_file():
            out[rel] = f"{oct(st.st_mode)}:" + hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[rel] = f"dir:{oct(st.st_mode)}"
    return out


@pytest.fixture
def canary(tmp_path: Path):
    """Files outside the cache that hostile sidecars and configs point at; must never change."""
    root = tmp_path / "canary"
    (root / "docs").mkdir(parents=True)
    (root / "notes.txt").write_text("my notes\n")
    (root / "victim2.json").write_text('{"keep": true}\n')
    (root / "victim2.wav").write_bytes(b"RIFF-not-ours")
    (root / "docs" / "thesis.txt").write_text("chapter 1\n")
    before = tree_digest(root)
    yield root
    assert tree_digest(root) == before, "a file outside the cache changed"


class Tmpfs:
    def __init__(self, path: Path) -> None:
        self.path = path

    def remount(self, options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(self.path)], check=True, capture_output=True)


@pytest.fixture
def tmpfs(tmp_path: Path):
    """A small real file system (needs root, as in CI); skips, saying why, where mounting is impossible."""
    created: list[Path] = []

    def mount(size: str, name: str = "fs") -> Tmpfs:
        path = tmp_path / name
        path.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
        created.append(path)
        return Tmpfs(path)

    yield mount
    for path in created:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)
