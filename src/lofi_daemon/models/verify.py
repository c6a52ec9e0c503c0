"""Checking files against the hub's checksums.

The hub names a file's content in one of two ways: LFS files (weights, big tokenizers) by
the sha256 of their bytes, plain git files (configs) by their git blob id, which is
``sha1(b"blob <size>\\0" + bytes)``. ``ContentHash`` computes either one incrementally, so
a resumed download only re-reads the part already on disk.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

CHUNK = 8 * 1024 * 1024

Reason = Literal["missing", "size", "checksum"]


@dataclass(frozen=True)
class Expected:
    """What a file must be: its size and, when known, a sha256 or a git blob id."""

    size: int
    sha256: str | None = None
    git_oid: str | None = None

    @property
    def has_checksum(self) -> bool:
        return bool(self.sha256 or self.git_oid)


@dataclass(frozen=True)
class BadFile:
    path: str
    reason: Reason
    detail: str = ""

    def describe(self) -> str:
        if self.reason == "missing":
            return f"file {self.path} is missing"
        if self.reason == "size":
            return f"file {self.path} has the wrong size ({self.detail})"
        return f"file {self.path} is corrupt ({self.detail})"


class ContentHash:
    """Feeds bytes in order and yields the digest the hub uses for this file."""

    def __init__(self, expected: Expected) -> None:
        self.expected = expected
        self.reset()

    def reset(self) -> None:
        self.count = 0
        if self.expected.sha256:
            self._h = hashlib.sha256()
        elif self.expected.git_oid:
            self._h = hashlib.sha1(f"blob {self.expected.size}\0".encode())
        else:
            self._h = None

    def update(self, data: bytes) -> None:
        if self._h is not None:
            self._h.update(data)
        self.count += len(data)

    def catch_up(self, path: Path) -> None:
        """Hash the bytes of ``path`` beyond those already fed (the part a resume keeps)."""
        with open(path, "rb") as f:
            f.seek(self.count)
            while chunk := f.read(CHUNK):
                self.update(chunk)

    def mismatch(self) -> str | None:
        """None when the digest matches; otherwise a short description for the error."""
        if self._h is None:
            return None
        got = self._h.hexdigest()
        want = self.expected.sha256 or self.expected.git_oid
        if got == want:
            return None
        kind = "sha256" if self.expected.sha256 else "git blob id"
        return f"{kind} {got[:12]}… expected {want[:12]}…"  # type: ignore[index]


def check_file(path: Path, rel: str, expected: Expected, *, hash_it: bool = True) -> BadFile | None:
    """Presence, size and (when ``hash_it``) checksum of one local file."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return BadFile(rel, "missing")
    if size != expected.size:
        return BadFile(rel, "size", f"{size} bytes, expected {expected.size}")
    if hash_it and expected.has_checksum:
        h = ContentHash(expected)
        try:
            h.catch_up(path)
        except FileNotFoundError:  # replaced under us (a repair running beside this check)
            return BadFile(rel, "missing")
        problem = h.mismatch()
        if problem:
            return BadFile(rel, "checksum", problem)
    return None
