"""Per-backend manifests: which hub repo, which revision, which files per component.

A manifest names only what a backend loads, never the whole repo. Three kinds of file
entry exist, because repos differ in ways we only learn from the hub at download time:

- ``files``: must exist in the repo.
- ``optional``: downloaded when the repo has them (e.g. a ``spiece.model`` next to a
  ``tokenizer.json``), skipped otherwise.
- ``sharded``: a safetensors weight that is either one file (``model.safetensors``) or an
  index (``model.safetensors.index.json``) plus the shards it lists.

``known`` pins what we already know about files (size, sha256) from research: it gives a
size before any request and is checked against the hub's own metadata at download time.
The files actually chosen at download time are recorded on disk (see ``record.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


def is_commit_hash(revision: str) -> bool:
    """True for a full git commit id; branch and tag names are resolved at download time."""
    return bool(_COMMIT_RE.match(revision))


@dataclass(frozen=True)
class FileSpec:
    """What we know about one repo file before asking the hub."""

    path: str
    size: int | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class Component:
    """A named part of a model (e.g. the transformer) and the repo files it needs."""

    name: str
    files: tuple[str, ...]
    optional: tuple[str, ...] = ()
    sharded: tuple[str, ...] = ()

    @property
    def candidate_files(self) -> tuple[str, ...]:
        """Every path this component may need, before the hub says which exist."""
        index_files = tuple(f"{name}.index.json" for name in self.sharded)
        return self.files + self.optional + self.sharded + index_files


@dataclass(frozen=True)
class ModelManifest:
    backend: str
    repo_id: str
    revision: str
    components: tuple[Component, ...]
    known: tuple[FileSpec, ...] = field(default=())

    @property
    def files(self) -> tuple[str, ...]:
        """The files every install has (optional and sharded choices are in the record)."""
        return tuple(f for c in self.components for f in c.files)

    def component(self, name: str) -> Component:
        for c in self.components:
            if c.name == name:
                return c
        raise KeyError(name)

    def known_spec(self, path: str) -> FileSpec | None:
        return next((k for k in self.known if k.path == path), None)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON, so a download worker process can be handed the exact manifest."""
        return {
            "backend": self.backend,
            "repo_id": self.repo_id,
            "revision": self.revision,
            "components": [
                {"name": c.name, "files": list(c.files), "optional": list(c.optional), "sharded": list(c.sharded)}
                for c in self.components
            ],
            "known": [{"path": k.path, "size": k.size, "sha256": k.sha256} for k in self.known],
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "ModelManifest":
        return cls(
            backend=raw["backend"],
            repo_id=raw["repo_id"],
            revision=raw["revision"],
            components=tuple(
                Component(
                    name=c["name"],
                    files=tuple(c["files"]),
                    optional=tuple(c.get("optional", ())),
                    sharded=tuple(c.get("sharded", ())),
                )
                for c in raw["components"]
            ),
            known=tuple(FileSpec(k["path"], k.get("size"), k.get("sha256")) for k in raw.get("known", ())),
        )
