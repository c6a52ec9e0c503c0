"""The download worker process: what the daemon runs, killed, cancelled and failing."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from model_helpers import FAST_RETRY, REPO_ID, sha256_of, tiny_files
from fakehub import FakeHub

from lofi_daemon.cancel import CancelToken
from lofi_daemon.errors import DownloadFailed, JobCancelled
from lofi_daemon.models.progress import DownloadProgress
from lofi_daemon.models.store import ModelStore
from lofi_daemon.models.worker import download_in_subprocess

WEIGHTS = "encoder/model.safetensors"
OPTIONS = {
    "retry": {"attempts": FAST_RETRY.attempts, "base_delay": FAST_RETRY.base_delay, "max_delay": FAST_RETRY.max_delay},
    "chunk_size": 16 * 1024,
}


def weights_sha() -> str:
    return hashlib.sha256(tiny_files()[WEIGHTS]).hexdigest()


def start_worker(manifest, store: ModelStore, **popen: object) -> subprocess.Popen:
    """The worker exactly as download_in_subprocess starts it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "lofi_daemon.models.worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        **popen,  # type: ignore[arg-type]
    )
    job = {"manifest": manifest.to_dict(), "models_dir": str(store.root), "options": OPTIONS}
    proc.stdin.write(json.dumps(job) + "\n")  # type: ignore[union-attr]
    proc.stdin.flush()  # type: ignore[union-attr]
    return proc


def wait_for_size(path: Path, at_least: int, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        size = path.stat().st_size if path.exists() else 0
        if size >= at_least:
            return size
        time.sleep(0.02)
    raise AssertionError(f"{path} never reached {at_least} bytes")


def test_a_worker_killed_mid_file_is_continued_by_the_next_run_with_a_range_request(hub: FakeHub, manifest, store):
    hub.throttle(300_000)  # bytes/s: slow enough to kill it half-way
    proc = start_worker(manifest, store)
    partial = store.snapshot_dir(manifest) / (WEIGHTS + ".incomplete")
    wait_for_size(partial, 200_000)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    kept = partial.stat().st_size
    assert 200_000 <= kept < len(tiny_files()[WEIGHTS])
    assert store.status(manifest) == "partial"

    hub.throttle(None)
    reports: list[DownloadProgress] = []
    result = download_in_subprocess(manifest, store.root, reports.append, options=OPTIONS)

    ranges = hub.range_requests(weights_sha())
    assert ranges == [None, f"bytes={kept}-"]  # first run from 0, second from the kept bytes
    assert reports[0].bytes_downloaded >= kept  # progress starts from what was on disk
    assert reports[-1].bytes_downloaded == reports[-1].bytes_total == result["bytes_total"]
    assert sha256_of(store.snapshot_dir(manifest) / WEIGHTS) == weights_sha()
    assert not partial.exists()
    assert store.is_installed(manifest)


def test_the_worker_downloads_even_when_the_daemon_is_offline(hub, manifest, store, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the daemon's own setting
    reports: list[DownloadProgress] = []
    result = download_in_subprocess(manifest, store.root, reports.append, options=OPTIONS)
    assert result["commit"] == hub.repos[REPO_ID].commit
    assert [r.component for r in reports][-1] == "tokenizer" and reports[-1].overall_percent == 100.0
    assert store.is_installed(manifest)


def test_store_download_in_an_offline_process_goes_through_the_worker(hub, manifest, store, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # as in the daemon
    reports: list[DownloadProgress] = []
    record = store.download(manifest, reports.append, retry=FAST_RETRY, chunk_size=16 * 1024)
    assert record.complete and record.commit == hub.repos[REPO_ID].commit
    assert reports[-1].overall_percent == 100.0
    assert store.is_installed(manifest)


def test_worker_errors_arrive_as_download_failed_with_their_hint(hub, manifest, store):
    hub.fail(status=500, times=1000, match="/lfs/")
    with pytest.raises(DownloadFailed) as err:
        download_in_subprocess(manifest, store.root, options=OPTIONS)
    assert WEIGHTS in err.value.message
    assert "continues where it stopped" in err.value.hint
    assert err.value.data["file"] == WEIGHTS
    assert not store.is_installed(manifest)


def test_cancel_stops_the_worker_and_keeps_its_partial_file(hub, manifest, store):
    hub.throttle(500_000)
    cancel = CancelToken()

    def on_progress(p: DownloadProgress) -> None:
        if p.bytes_downloaded > 100_000:
            cancel.cancel()

    started = time.monotonic()
    with pytest.raises(JobCancelled):
        download_in_subprocess(manifest, store.root, on_progress, cancel, options=OPTIONS)
    assert time.monotonic() - started < 10
    partial = store.snapshot_dir(manifest) / (WEIGHTS + ".incomplete")
    assert 100_000 < partial.stat().st_size < len(tiny_files()[WEIGHTS])


@pytest.mark.skipif(sys.platform != "linux", reason="uses RLIMIT_FSIZE to make the OS refuse a write")
def test_a_write_the_os_refuses_ends_in_download_failed_with_a_disk_hint(hub, manifest, store):
    import resource

    def small_file_limit() -> None:
        # Python ignores SIGXFSZ, so an over-limit write fails with EFBIG like a full disk.
        resource.setrlimit(resource.RLIMIT_FSIZE, (500_000, 500_000))

    proc = start_worker(manifest, store, preexec_fn=small_file_limit)
    out = proc.stdout.read()  # type: ignore[union-attr]  # stdin stays open: closing it means cancel
    proc.wait(timeout=60)
    proc.stdin.close()  # type: ignore[union-attr]
    events = [json.loads(line) for line in out.splitlines()]
    assert events[-1]["event"] == "error"
    error = events[-1]["error"]
    assert error["data"]["error_code"] == "DOWNLOAD_FAILED"
    assert "cannot write" in error["message"]
    assert "disk space" in error["data"]["hint"]
    assert proc.returncode == 1
    assert not store.is_installed(manifest)
