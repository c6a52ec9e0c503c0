"""Per-backend manifests: which hub repo, which revision, which files per component."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Component:
    """A named part of a model (e.g. the transformer) and the repo files it needs."""

    name: str
    files: tuple[str, ...]


@dataclass(frozen=True)
class ModelManifest:
    backend: str
    repo_id: str
    revision: str
    components: tuple[Component, ...]

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(f for c in self.components for f in c.files)
