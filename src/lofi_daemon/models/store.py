"""The on-disk model store under ``<cache>/models``.

Layout: the hub cache layout (``models--ORG--NAME/snapshots/<revision>/<files>``), so a
snapshot folder can be handed to ``from_pretrained`` as a plain local directory and
loading never touches the network.
"""

from __future__ import annotations

from pathlib import Path

from .manifest import ModelManifest


class ModelStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def repo_dir(self, manifest: ModelManifest) -> Path:
        return self.root / ("models--" + manifest.repo_id.replace("/", "--"))

    def snapshot_dir(self, manifest: ModelManifest) -> Path:
        return self.repo_dir(manifest) / "snapshots" / manifest.revision

    def is_installed(self, manifest: ModelManifest) -> bool:
        """Every file of every component is present (sizes/hashes: see verify)."""
        snap = self.snapshot_dir(manifest)
        return all((snap / f).is_file() for f in manifest.files)

    def size_bytes(self, manifest: ModelManifest) -> int:
        snap = self.snapshot_dir(manifest)
        return sum((snap / f).stat().st_size for f in manifest.files if (snap / f).is_file())
