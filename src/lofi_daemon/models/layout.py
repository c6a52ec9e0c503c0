"""Where a backend's files live in the model store (paths only, and the install record).

Both the store (state, verification) and the downloader stand on this, so the downloader
needs neither the store nor the worker that runs it in a child process. The layout itself is
drawn in ``store.py``'s docstring.
"""

from __future__ import annotations

from pathlib import Path

from .manifest import ModelManifest, is_commit_hash
from .record import InstallRecord

PARTIAL_SUFFIX = ".incomplete"


class StoreLayout:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def repo_dir(self, manifest: ModelManifest) -> Path:
        return self.root / ("models--" + manifest.repo_id.replace("/", "--"))

    def commit(self, manifest: ModelManifest) -> str | None:
        """The commit this manifest's files live under: pinned, or what setup resolved."""
        if is_commit_hash(manifest.revision):
            return manifest.revision
        ref = self.repo_dir(manifest) / "refs" / manifest.revision
        try:
            commit = ref.read_text(encoding="utf-8").strip()
        except OSError:
            return None
        return commit if is_commit_hash(commit) else None

    def snapshot_dir(self, manifest: ModelManifest) -> Path:
        return self.repo_dir(manifest) / "snapshots" / (self.commit(manifest) or manifest.revision)

    def record_path(self, manifest: ModelManifest) -> Path:
        return self.repo_dir(manifest) / "lofi" / f"{self.commit(manifest) or manifest.revision}.json"

    def lock_path(self, manifest: ModelManifest) -> Path:
        return self.repo_dir(manifest) / "lofi" / "download.lock"

    def read_record(self, manifest: ModelManifest) -> InstallRecord | None:
        record = InstallRecord.load(self.record_path(manifest))
        if record is not None and record.repo_id != manifest.repo_id:
            return None
        return record

    def partial_files(self, manifest: ModelManifest) -> list[Path]:
        snap = self.snapshot_dir(manifest)
        return sorted(snap.rglob("*" + PARTIAL_SUFFIX)) if snap.is_dir() else []

