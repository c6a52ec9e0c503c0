"""The install record: what setup chose to download and what has been verified.

One JSON file per snapshot, ``<repo dir>/lofi/<commit>.json``, outside the snapshot folder
so that folder holds only model files. It keeps:

- the resolved commit and, per file, its component, size and hub checksum (so status and
  load-time checks need no network);
- ``verified``: the (size, mtime_ns) each file had when its checksum last matched, so a
  check only re-hashes files that changed since;
- ``bad``: files a check found corrupt, so status reports them before the next setup;
- ``complete``: set once every file is in place and verified.

Writes are atomic (temp file + ``os.replace``).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..files import write_private_atomic
from .verify import Expected

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


@dataclass
class FileRecord:
    path: str
    component: str
    size: int
    sha256: str | None = None
    git_oid: str | None = None

    @property
    def expected(self) -> Expected:
        return Expected(self.size, self.sha256, self.git_oid)


@dataclass
class InstallRecord:
    backend: str
    repo_id: str
    revision: str
    commit: str
    files: list[FileRecord]
    complete: bool = False
    verified: dict[str, list[int]] = field(default_factory=dict)  # path -> [size, mtime_ns]
    bad: list[str] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def file(self, path: str) -> FileRecord | None:
        return next((f for f in self.files if f.path == path), None)

    def stamp_matches(self, path: str, st: os.stat_result) -> bool:
        return self.verified.get(path) == [st.st_size, st.st_mtime_ns]

    def mark_verified(self, path: str, st: os.stat_result) -> None:
        self.verified[path] = [st.st_size, st.st_mtime_ns]
        if path in self.bad:
            self.bad.remove(path)

    def mark_bad(self, path: str) -> None:
        self.verified.pop(path, None)
        if path not in self.bad:
            self.bad.append(path)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["format"] = FORMAT_VERSION
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "InstallRecord":
        _check_shape(raw)
        return cls(
            backend=raw["backend"],
            repo_id=raw["repo_id"],
            revision=raw["revision"],
            commit=raw["commit"],
            files=[FileRecord(**f) for f in raw["files"]],
            complete=bool(raw.get("complete", False)),
            verified={k: list(v) for k, v in raw.get("verified", {}).items()},
            bad=list(raw.get("bad", [])),
        )

    @classmethod
    def load(cls, path: Path) -> "InstallRecord | None":
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return cls.from_dict(raw)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
            # A damaged record only costs a re-verification: setup rebuilds it.
            log.warning("ignoring unreadable install record %s: %s", path, exc)
            return None

    def save(self, path: Path) -> None:
        """Atomically, through a temp file of this call's own (two checks may save at once)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private_atomic(path, (json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n").encode())


def _check_shape(raw: Any) -> None:
    """Type-check a record read from disk (untrusted input); raises ValueError naming the field."""
    def need(ok: bool, what: str) -> None:
        if not ok:
            raise ValueError(f"install record: {what}")

    need(isinstance(raw, dict), "not a JSON object")
    for key in ("backend", "repo_id", "revision", "commit"):
        need(isinstance(raw.get(key), str), f"{key} must be a string")
    files = raw.get("files")
    need(isinstance(files, list), "files must be a list")
    for f in files:
        need(isinstance(f, dict) and set(f) <= {"path", "component", "size", "sha256", "git_oid"}, "bad file entry")
        path = f.get("path")
        need(isinstance(path, str) and _is_inside(path), f"file path {path!r} must stay inside the snapshot")
        need(isinstance(f.get("component"), str), f"{path}: component must be a string")
        need(type(f.get("size")) is int and f["size"] >= 0, f"{path}: size must be a whole number")
        for key in ("sha256", "git_oid"):
            need(f.get(key) is None or isinstance(f[key], str), f"{path}: {key} must be a string")
    need(isinstance(raw.get("complete", False), bool), "complete must be true or false")
    verified = raw.get("verified", {})
    need(isinstance(verified, dict) and all(
        isinstance(v, list) and len(v) == 2 and all(type(n) is int for n in v) for v in verified.values()),
        "verified must map paths to [size, mtime_ns]")
    bad = raw.get("bad", [])
    need(isinstance(bad, list) and all(isinstance(b, str) for b in bad), "bad must be a list of paths")


def _is_inside(rel: str) -> bool:
    parts = rel.replace("\\", "/").split("/")
    return bool(rel) and not rel.startswith("/") and ".." not in parts and "" not in parts
