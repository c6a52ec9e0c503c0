"""The on-disk model store under ``<cache>/models``.

Layout (the hub cache layout, with plain files instead of symlinks into ``blobs/``)::

    models--ORG--NAME/
      refs/<branch>                      commit a branch name resolved to (only for unpinned manifests)
      snapshots/<commit>/<files>         what backends load: a plain local directory
      snapshots/<commit>/<file>.incomplete   a download in progress, continued by the next run
      lofi/<commit>.json                 install record (see record.py)
      lofi/download.lock                 held while a process downloads this repo

A snapshot folder can be handed to ``from_pretrained`` as a local directory, so loading
never touches the network. Nothing here hashes on the status path: ``status`` looks at
presence and sizes only; checksums are checked by ``verify`` (setup) and
``verify_for_load`` (which re-hashes only files changed since their last check).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal

from ..errors import BackendNotInstalled, DownloadFailed, ModelLoadFailed
from .layout import PARTIAL_SUFFIX, StoreLayout
from .manifest import ModelManifest
from .record import InstallRecord
from .verify import BadFile, check_file

if TYPE_CHECKING:
    from ..cancel import CancelToken
    from .progress import DownloadProgress

log = logging.getLogger(__name__)

Status = Literal["installed", "not_installed", "partial"]

class ModelStore(StoreLayout):
    """The store: where files are (``StoreLayout``), their state, verification, download."""

    # -- status (cheap: stat calls only) ----------------------------------------------

    def status(self, manifest: ModelManifest) -> Status:
        """installed: every recorded file present with its size and none known bad.

        partial: some trace of an install (files, a record, a partial download).
        not_installed: nothing on disk.
        """
        record = self.read_record(manifest)
        snap = self.snapshot_dir(manifest)
        if record is not None and record.complete and not record.bad:
            if all(_size_of(snap / f.path) == f.size for f in record.files):
                return "installed"
            return "partial"
        if record is not None:
            return "partial"
        has_any = snap.is_dir() and any(p.is_file() for p in snap.rglob("*"))
        return "partial" if has_any else "not_installed"

    def is_installed(self, manifest: ModelManifest) -> bool:
        return self.status(manifest) == "installed"

    def needs_repair(self, manifest: ModelManifest) -> bool:
        """Installed, but a file changed since its last good check (size or mtime) fails
        its checksum now. What setup asks before saying "nothing to download": it re-hashes
        only changed files, and marks bad ones so the download repairs just those."""
        return self.is_installed(manifest) and bool(self.verify(manifest, full=False))

    def size_bytes(self, manifest: ModelManifest) -> int:
        """Bytes of this model's finished files on disk."""
        snap = self.snapshot_dir(manifest)
        record = self.read_record(manifest)
        paths = [f.path for f in record.files] if record else list(manifest.files)
        return sum(_size_of(snap / p) or 0 for p in paths)

    def expected_size_bytes(self, manifest: ModelManifest) -> int | None:
        """Bytes the install takes once complete: from the record, else the pinned sizes."""
        record = self.read_record(manifest)
        if record is not None:
            return record.total_bytes
        sizes = [manifest.known_spec(p) for p in manifest.files]
        if all(s is not None and s.size is not None for s in sizes):
            return sum(s.size for s in sizes)  # type: ignore[union-attr,misc]
        return None

    def install_size_bytes(self, manifest: ModelManifest) -> int:
        """What a backend reports as its size: the complete install's bytes where known,
        else what is on disk so far."""
        expected = self.expected_size_bytes(manifest)
        return expected if expected is not None else self.size_bytes(manifest)

    # -- verification -----------------------------------------------------------------

    def verify(self, manifest: ModelManifest, full: bool = False) -> list[BadFile]:
        """Files that are missing, the wrong size or corrupt.

        ``full=False`` re-hashes only files whose size or mtime changed since their last
        good check; ``full=True`` re-hashes everything. Results are written back to the
        record (good files get a fresh stamp, bad ones are marked bad).
        """
        record = self.read_record(manifest)
        if record is None:
            return [BadFile(p, "missing", "no install record") for p in manifest.files]
        snap = self.snapshot_dir(manifest)
        bad: list[BadFile] = []
        changed = False
        for f in record.files:
            path = snap / f.path
            try:
                st = path.stat()
            except FileNotFoundError:
                bad.append(BadFile(f.path, "missing"))
                continue
            must_hash = full or not record.stamp_matches(f.path, st)
            problem = check_file(path, f.path, f.expected, hash_it=must_hash)
            if problem is not None:
                bad.append(problem)
                if problem.reason == "checksum" and f.path not in record.bad:
                    record.mark_bad(f.path)
                    changed = True
            elif must_hash:
                record.mark_verified(f.path, st)
                changed = True
        if changed:
            record.save(self.record_path(manifest))
        return bad

    def verify_for_load(self, manifest: ModelManifest) -> Path:
        """Check before loading; returns the snapshot folder to load from.

        Raises BACKEND_NOT_INSTALLED when setup never completed, MODEL_LOAD_FAILED naming
        the first missing or corrupt file otherwise.
        """
        setup = f":LofiSetup {manifest.backend.replace('_', '-')}"
        record = self.read_record(manifest)
        if record is None or not record.complete:
            raise BackendNotInstalled(
                f"{manifest.backend} is not installed",
                hint=f"Run {setup} to download it.",
                backend=manifest.backend,
            )
        bad = self.verify(manifest, full=False)
        if bad:
            first = bad[0]
            raise ModelLoadFailed(
                f"{first.describe()} — run {setup} again",
                hint=f"Run {setup} again: it re-downloads only the damaged files.",
                backend=manifest.backend,
                file=first.path,
                bad_files=[b.path for b in bad],
            )
        return self.snapshot_dir(manifest)

    # -- download -----------------------------------------------------------------------

    def download(
        self,
        manifest: ModelManifest,
        on_progress: "Callable[[DownloadProgress], None] | None" = None,
        cancel: "CancelToken | None" = None,
        **options: Any,
    ) -> InstallRecord:
        """Download (or repair) this manifest's files; returns the completed record.

        Runs in this process, unless the hub is offline here (the daemon sets
        HF_HUB_OFFLINE so loading can never reach the network): then the transfer runs
        in a worker process (worker.py) with the same progress, cancel and errors.
        ``options``: see ``download.download`` (``retry``, ``read_timeout``,
        ``chunk_size``, ``endpoint``; ``disk_free`` only in-process).
        """
        if not hub_offline_here():
            from .download import download

            return download(self, manifest, on_progress=on_progress, cancel=cancel, **options)

        from .worker import download_in_subprocess, worker_options

        env = None
        if options.get("endpoint"):
            env = {**os.environ, "HF_ENDPOINT": str(options["endpoint"])}
        download_in_subprocess(manifest, self.root, on_progress, cancel, options=worker_options(options), env=env)
        record = self.read_record(manifest)
        if record is None or not record.complete:
            raise DownloadFailed(
                f"the download worker finished but {manifest.backend} is not complete on disk",
                hint=f"Run :LofiSetup {manifest.backend.replace('_', '-')} again.",
            )
        return record


def hub_offline_here() -> bool:
    """Whether huggingface_hub refuses requests in this process (HF_HUB_OFFLINE)."""
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        return bool(getattr(constants, "HF_HUB_OFFLINE", False))
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in {"1", "ON", "YES", "TRUE"}


def _size_of(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None
