"""Download (or repair) one backend's files, component by component.

    download(layout, manifest, on_progress, cancel)
      1. lock the repo folder (another process downloading it -> DOWNLOAD_IN_PROGRESS)
      2. plan: branch -> commit, the hub's size/checksum for each file, optional files
         that exist, single-file vs sharded weights; pinned facts must agree
      3. clean orphaned partial files (ours from other commits, huggingface_hub's blobs/)
      4. keep files already on disk whose checksum matches; delete the rest
      5. check free disk space against what is left to fetch
      6. fetch each missing file with our resumable writer (transfer.py), retrying
         network errors and 5xx with backoff; every retry resumes with a Range request
      7. mark the install record complete

Errors: DOWNLOAD_FAILED (with a hint) for anything that cannot be fixed by waiting,
CANCELLED via the CancelToken (partial files stay, so the next run continues them).
This runs in whichever process calls it; the daemon itself is kept offline and calls
``worker.download_in_subprocess`` instead.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

from ..cancel import CancelToken
from ..errors import DownloadFailed
from .layout import StoreLayout
from .hub import Hub, HubUnreachable, RemoteFile, TransientError
from .lock import RepoLock
from .manifest import ModelManifest, is_commit_hash
from .progress import DownloadProgress, ProgressTracker
from .record import FileRecord, InstallRecord
from .transfer import CHUNK_SIZE, ByteCounter, ChecksumMismatch, fetch_file, partial_path
from .verify import ContentHash, check_file

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts per request; the wait doubles from ``base_delay`` up to ``max_delay``.
    An attempt that moved bytes does not count toward the limit."""

    attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0

    def delay(self, attempt: int) -> float:
        return min(self.max_delay, self.base_delay * 2 ** (attempt - 1))


def free_bytes(path: Path) -> int:
    """Free space on the file system that holds ``path`` (or its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def download(
    store: StoreLayout,
    manifest: ModelManifest,
    on_progress: Callable[[DownloadProgress], None] | None = None,
    cancel: CancelToken | None = None,
    *,
    endpoint: str | None = None,
    retry: RetryPolicy = RetryPolicy(),
    disk_free: Callable[[Path], int] = free_bytes,
    read_timeout: float = 60.0,
    chunk_size: int = CHUNK_SIZE,
) -> InstallRecord:
    """Make ``manifest``'s files present and verified under ``store``; see the module doc.

    ``on_progress`` gets DownloadProgress reports; ``cancel`` stops within one chunk.
    ``endpoint`` defaults to HF_ENDPOINT; ``disk_free`` measures free bytes (a seam for
    tests and odd file systems); ``read_timeout`` is per socket read; ``chunk_size`` is
    the streaming granularity (progress and cancel are checked once per chunk).
    """
    cancel = cancel or CancelToken()
    setup = f":LofiSetup {manifest.backend.replace('_', '-')}"
    with RepoLock(store.lock_path(manifest), f"{manifest.backend} ({manifest.repo_id})"):
        hub = Hub(endpoint)
        job = _Job(store, manifest, hub, retry, cancel, read_timeout, chunk_size, setup)
        record = job.plan()
        job.clean_orphans(record)
        kept, partial_bytes = job.keep_good_files(record)
        job.check_disk_space(record, kept, partial_bytes, disk_free)
        job.fetch_all(record, kept, partial_bytes, on_progress)
        return record


class _Job:
    def __init__(
        self,
        store: StoreLayout,
        manifest: ModelManifest,
        hub: Hub,
        retry: RetryPolicy,
        cancel: CancelToken,
        read_timeout: float,
        chunk_size: int,
        setup: str,
    ) -> None:
        self.store = store
        self.manifest = manifest
        self.hub = hub
        self.retry = retry
        self.cancel = cancel
        self.read_timeout = read_timeout
        self.chunk_size = chunk_size
        self.setup = setup
        self.commit = ""

    # -- 2. plan ------------------------------------------------------------------------

    def plan(self) -> InstallRecord:
        m = self.manifest
        if is_commit_hash(m.revision):
            self.commit = m.revision
        else:
            self.commit = self._with_retries(lambda: self.hub.resolve_commit(m.repo_id, m.revision), "resolve revision")
            ref = self.store.repo_dir(m) / "refs" / m.revision
            ref.parent.mkdir(parents=True, exist_ok=True)
            ref.write_text(self.commit, encoding="utf-8")
            log.info("%s: %s resolved to commit %s", m.repo_id, m.revision, self.commit)

        candidates = sorted({p for c in m.components for p in c.candidate_files})
        remote = self._paths_info(candidates)
        previous = self.store.read_record(m)
        record = InstallRecord(m.backend, m.repo_id, m.revision, self.commit, files=[])
        for component in m.components:
            for path in component.files:
                if path not in remote:
                    raise DownloadFailed(
                        f"{m.repo_id}@{self.commit[:12]} has no file {path}",
                        hint="The model manifest and the repo disagree: update lofi.nvim, or report it.",
                        file=path,
                    )
                record.files.append(self._file_record(component.name, remote[path]))
            for path in component.optional:
                if path in remote:
                    record.files.append(self._file_record(component.name, remote[path]))
            for weights in component.sharded:
                for rf in self._resolve_sharded(weights, remote, record):
                    record.files.append(self._file_record(component.name, rf))
        if previous is not None and previous.commit == self.commit:
            # Stamps of files whose expected content did not change stay valid.
            for f in record.files:
                old = previous.file(f.path)
                if old is not None and (old.size, old.sha256, old.git_oid) == (f.size, f.sha256, f.git_oid):
                    if f.path in previous.verified and f.path not in previous.bad:
                        record.verified[f.path] = previous.verified[f.path]
        record.save(self.store.record_path(m))
        return record

    def _paths_info(self, paths: list[str]) -> dict[str, RemoteFile]:
        return self._with_retries(lambda: self.hub.paths_info(self.manifest.repo_id, self.commit, paths), "file list")

    def _resolve_sharded(self, weights: str, remote: dict[str, RemoteFile], record: InstallRecord) -> list[RemoteFile]:
        """One ``model.safetensors``, or its index plus the shards the index names."""
        if weights in remote:
            return [remote[weights]]
        index_path = f"{weights}.index.json"
        if index_path not in remote:
            raise DownloadFailed(
                f"{self.manifest.repo_id}@{self.commit[:12]} has neither {weights} nor {index_path}",
                hint="This checkpoint has no safetensors weights lofi.nvim can load; pick another model.",
                file=weights,
            )
        index = remote[index_path]
        index_record = self._file_record("index", index)
        self._fetch(index_record, ByteCounter(lambda n: None))
        final = self.store.snapshot_dir(self.manifest) / index_path
        try:
            weight_map = json.loads(final.read_text(encoding="utf-8"))["weight_map"]
            shards = sorted(set(weight_map.values()))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DownloadFailed(f"{index_path} is not a safetensors index: {exc}", file=index_path) from exc
        folder = index_path.rsplit("/", 1)[0] + "/" if "/" in index_path else ""
        shard_paths = [folder + s for s in shards]
        shard_info = self._paths_info(shard_paths)
        missing = [p for p in shard_paths if p not in shard_info]
        if missing:
            raise DownloadFailed(f"{index_path} names shards the repo does not have: {missing}", file=index_path)
        return [index] + [shard_info[p] for p in shard_paths]

    def _file_record(self, component: str, rf: RemoteFile) -> FileRecord:
        known = self.manifest.known_spec(rf.path)
        if known is not None:
            if known.size is not None and known.size != rf.size:
                raise self._pin_mismatch(rf.path, f"size {rf.size}, pinned {known.size}")
            if known.sha256 and rf.sha256 and known.sha256 != rf.sha256:
                raise self._pin_mismatch(rf.path, f"sha256 {rf.sha256[:12]}…, pinned {known.sha256[:12]}…")
        sha256 = rf.sha256 or (known.sha256 if known else None)
        return FileRecord(rf.path, component, rf.size, sha256=sha256, git_oid=rf.git_oid)

    def _pin_mismatch(self, path: str, detail: str) -> DownloadFailed:
        return DownloadFailed(
            f"the hub's {path} at {self.commit[:12]} is not the pinned file ({detail})",
            hint="Refusing to install unexpected weights; update lofi.nvim or report this.",
            file=path,
        )

    # -- 3. orphans -----------------------------------------------------------------------

    def clean_orphans(self, record: InstallRecord) -> list[Path]:
        """Partial files no run will continue: other commits, huggingface_hub's per-process
        ``blobs/*.incomplete``, files this manifest no longer needs, stale temp records."""
        repo = self.store.repo_dir(self.manifest)
        wanted = {partial_path(self.store.snapshot_dir(self.manifest) / f.path) for f in record.files}
        orphans = [p for p in repo.rglob("*.incomplete") if p not in wanted]
        orphans += list((repo / "lofi").glob("*.tmp"))
        for p in orphans:
            log.info("removing orphaned partial file %s", p)
            p.unlink(missing_ok=True)
        return orphans

    # -- 4. what is already good ------------------------------------------------------------

    def keep_good_files(self, record: InstallRecord) -> tuple[set[str], dict[str, int]]:
        snap = self.store.snapshot_dir(self.manifest)
        kept: set[str] = set()
        partial: dict[str, int] = {}
        for f in record.files:
            self.cancel.check()
            final = snap / f.path
            if final.is_file():
                st = final.stat()
                trusted = record.stamp_matches(f.path, st) and st.st_size == f.size
                problem = None if trusted else check_file(final, f.path, f.expected)
                if problem is None:
                    kept.add(f.path)
                    record.mark_verified(f.path, st)
                    continue
                log.info("repairing %s: %s", f.path, problem.describe())
                final.unlink()
                record.verified.pop(f.path, None)
            part = partial_path(final)
            if part.is_file():
                size = part.stat().st_size
                if size > f.size:
                    part.unlink()
                else:
                    partial[f.path] = size
        record.save(self.store.record_path(self.manifest))
        return kept, partial

    # -- 5. disk space ----------------------------------------------------------------------

    def check_disk_space(
        self, record: InstallRecord, kept: set[str], partial: dict[str, int], disk_free: Callable[[Path], int]
    ) -> None:
        needed = sum(f.size - partial.get(f.path, 0) for f in record.files if f.path not in kept)
        snap = self.store.snapshot_dir(self.manifest)
        free = disk_free(snap)
        if needed > free:
            raise DownloadFailed(
                f"not enough disk space for {self.manifest.backend}: need {_gb(needed)}, {_gb(free)} free",
                hint=f"Free at least {_gb(needed - free)} under {self.store.root} "
                f"(or set LOFI_CACHE_DIR to a bigger disk), then run {self.setup} again.",
                needed_bytes=needed,
                free_bytes=free,
            )

    # -- 6. fetch ---------------------------------------------------------------------------

    def fetch_all(
        self,
        record: InstallRecord,
        kept: set[str],
        partial: dict[str, int],
        on_progress: Callable[[DownloadProgress], None] | None,
    ) -> None:
        components = [c.name for c in self.manifest.components]
        totals = {name: sum(f.size for f in record.files if f.component == name) for name in components}
        tracker = ProgressTracker(self.manifest.backend, totals, on_progress)
        for f in record.files:
            tracker.done[f.component] += f.size if f.path in kept else partial.get(f.path, 0)
        record_path = self.store.record_path(self.manifest)
        snap = self.store.snapshot_dir(self.manifest)
        for name in components:
            tracker.start_component(name)
            for f in (f for f in record.files if f.component == name and f.path not in kept):
                self._fetch(f, ByteCounter(tracker.add, already=partial.get(f.path, 0)))
                record.mark_verified(f.path, (snap / f.path).stat())
                record.save(record_path)
            tracker.finish_component()
        record.complete = True
        record.bad = []
        record.save(record_path)

    def _fetch(self, f: FileRecord, counter: ByteCounter) -> None:
        """One file, retried: each attempt re-asks the hub where the bytes are (a CDN URL
        may expire) and continues from what is on disk."""
        final = self.store.snapshot_dir(self.manifest) / f.path
        if final.is_file() and check_file(final, f.path, f.expected) is None:
            return
        hasher = ContentHash(f.expected)
        what = f"{self.manifest.repo_id}/{f.path}"
        failures = mismatches = 0
        while True:
            self.cancel.check()
            before = counter.counted
            try:
                located = self.hub.locate(self.manifest.repo_id, self.commit, f.path)
                self._check_located(f, located.size, located.etag)
                fetch_file(
                    self.hub,
                    located.url,
                    final,
                    f.expected,
                    hasher,
                    counter,
                    self.cancel,
                    what=what,
                    repo_id=self.manifest.repo_id,
                    read_timeout=self.read_timeout,
                    chunk_size=self.chunk_size,
                )
                return
            except ChecksumMismatch as exc:
                mismatches += 1
                if mismatches >= 2:
                    raise DownloadFailed(
                        f"{what} failed its checksum twice: {exc}",
                        hint=f"Something between you and the hub alters the file; run {self.setup} again later.",
                        file=f.path,
                    ) from exc
                error: Exception = exc
            except TransientError as exc:
                error = exc
            failures = 0 if counter.counted > before else failures + 1
            if failures >= self.retry.attempts:
                raise DownloadFailed(
                    f"could not download {f.path}: {error}",
                    hint=f"Check your network connection and run {self.setup} again; "
                    "it continues where it stopped.",
                    file=f.path,
                    attempts=failures,
                ) from error
            log.warning("%s (retrying)", error)
            self._wait(self.retry.delay(max(failures, 1)))

    def _check_located(self, f: FileRecord, size: int | None, etag: str | None) -> None:
        if size is not None and size != f.size:
            raise TransientError(f"{f.path}: the hub reports {size} bytes here but {f.size} in its file list")
        if etag and etag not in (f.sha256, f.git_oid):
            log.debug("%s: etag %s is neither sha256 nor git id (the hub may have changed its etags)", f.path, etag)

    # -- retries ----------------------------------------------------------------------------

    def _with_retries(self, call: Callable[[], T], what: str) -> T:
        for attempt in range(1, self.retry.attempts + 1):
            self.cancel.check()
            try:
                return call()
            except HubUnreachable as exc:
                raise DownloadFailed(str(exc), hint=f"Check the network connection (or HF_ENDPOINT), then run "
                                     f"{self.setup} again.", attempts=attempt) from exc
            except TransientError as exc:
                if attempt == self.retry.attempts:
                    raise DownloadFailed(
                        f"could not get the {what} of {self.manifest.repo_id}: {exc}",
                        hint=f"Check your network connection and run {self.setup} again.",
                        attempts=attempt,
                    ) from exc
                log.warning("%s (retrying)", exc)
                self._wait(self.retry.delay(attempt))
        raise AssertionError("unreachable")

    def _wait(self, seconds: float) -> None:
        """Sleep between retries, but answer a cancel at once."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.cancel.check()
            time.sleep(min(0.05, left))
        self.cancel.check()


def _gb(nbytes: int) -> str:
    return f"{nbytes / 1e9:.2f} GB" if nbytes >= 10_000_000 else f"{nbytes} bytes"
