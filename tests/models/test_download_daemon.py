"""``download_backend`` through the real daemon process, against the fake hub.

A tiny random MusicGen in the real checkpoint layout (tests/musicgen/tiny_musicgen.py) is
served as ``facebook/musicgen-small`` at the pinned commit. The daemon runs as the plugin
runs it (real pipes, ``HF_HUB_OFFLINE=1`` in its environment), so its downloads go through
the worker process.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from daemon_client import Daemon
from fakehub import FakeHub, FakeRepo

from lofi_daemon.errors import DownloadInProgress
from lofi_daemon.models.lock import RepoLock
from lofi_daemon.models.manifests import musicgen_manifest
from lofi_daemon.models.store import ModelStore
from tiny_musicgen import tiny_musicgen_hub_files

MODEL = "facebook/musicgen-small"


@pytest.fixture(scope="module")
def tiny_musicgen_files(tmp_path_factory) -> dict[str, bytes]:
    return tiny_musicgen_hub_files(tmp_path_factory.mktemp("tiny-musicgen"))


@pytest.fixture
def musicgen_hub(tiny_musicgen_files, cache_dir):
    """The fake hub serving the tiny MusicGen as the real repo at the pinned commit."""
    manifest = musicgen_manifest(MODEL)
    hub = FakeHub([FakeRepo(MODEL, tiny_musicgen_files, commit=manifest.revision)]).start()
    yield hub
    hub.stop()


def start_daemon(cache_dir: Path, hub: FakeHub) -> Daemon:
    # cache_dir (tests/conftest.py) already put HF_HUB_OFFLINE=1 in the environment.
    return Daemon.start(cache_dir, {"HF_ENDPOINT": hub.endpoint, "LOFI_LOG_LEVEL": "INFO"})


def backend_info(d: Daemon, name: str) -> dict:
    backends = d.call("get_backends")["result"]["backends"]
    return next(b for b in backends if b["name"] == name)


def weights_sha(files: dict[str, bytes]) -> str:
    import hashlib

    return hashlib.sha256(files["model.safetensors"]).hexdigest()


def test_setup_through_the_daemon_reports_progress_refuses_a_second_call_and_keeps_generating(
    musicgen_hub, tiny_musicgen_files, cache_dir
):
    musicgen_hub.throttle(1_500_000)  # a few seconds, so the second call and a generation overlap it
    with start_daemon(cache_dir, musicgen_hub) as d:
        assert backend_info(d, "musicgen")["status"] == "not_installed"

        assert d.call("download_backend", backend="musicgen")["result"] == {"started": True, "already_installed": False}
        second = d.call("download_backend", backend="musicgen")
        assert second["error"]["data"]["error_code"] == "DOWNLOAD_IN_PROGRESS"
        assert backend_info(d, "musicgen")["status"] == "downloading"

        track = d.call("generate", prompt="rain on a window", duration_sec=5, seed=3, backend="procedural")
        done = d.wait_terminal(track["result"]["track_id"], timeout=60)
        assert done["method"] == "generation_complete" and done["backend"] == "procedural"
        d.wait_for("download_complete", timeout=120, backend="musicgen")
        # The generation finished while the download was still going.
        order = [m.get("method") for m in d.messages if isinstance(m, dict)]
        assert order.index("generation_complete") < order.index("download_complete")

        reports = d.notifications("download_progress")
        total = sum(len(v) for v in tiny_musicgen_files.values())
        assert reports and all(r["backend"] == "musicgen" and r["bytes_total"] == total for r in reports)
        assert [r["bytes_downloaded"] for r in reports] == sorted(r["bytes_downloaded"] for r in reports)
        assert all(r["overall_percent"] == round(100 * r["bytes_downloaded"] / total, 2) for r in reports)
        assert {r["component"] for r in reports} == {"model", "processor"}
        assert reports[-1]["overall_percent"] == 100.0

        assert backend_info(d, "musicgen")["status"] == "installed"
        assert backend_info(d, "musicgen")["size_bytes"] == total
        assert d.call("download_backend", backend="musicgen")["result"] == {"started": False, "already_installed": True}


def test_a_daemon_killed_mid_file_continues_the_download_after_a_restart(musicgen_hub, tiny_musicgen_files, cache_dir):
    manifest = musicgen_manifest(MODEL)
    store = ModelStore(cache_dir / "models")
    partial = store.snapshot_dir(manifest) / "model.safetensors.incomplete"
    musicgen_hub.throttle(800_000)
    d = start_daemon(cache_dir, musicgen_hub)
    try:
        d.call("download_backend", backend="musicgen")
        deadline = time.monotonic() + 60
        while (partial.stat().st_size if partial.exists() else 0) < 1_000_000:
            assert time.monotonic() < deadline, "the download never got going"
            time.sleep(0.02)
        os.kill(d.proc.pid, signal.SIGKILL)
        d.proc.wait(timeout=10)
    finally:
        d.close()
    # The worker notices its parent is gone (its stdin closes) and stops within a chunk.
    deadline = time.monotonic() + 30
    while True:
        try:
            with RepoLock(store.lock_path(manifest), "musicgen"):
                break
        except DownloadInProgress:
            assert time.monotonic() < deadline, "the download worker outlived its daemon"
            time.sleep(0.05)
    kept = partial.stat().st_size
    assert 1_000_000 <= kept < len(tiny_musicgen_files["model.safetensors"])

    musicgen_hub.throttle(None)
    with start_daemon(cache_dir, musicgen_hub) as d:
        assert backend_info(d, "musicgen")["status"] != "installed"
        d.call("download_backend", backend="musicgen")
        d.wait_for("download_complete", timeout=120, backend="musicgen")
        assert musicgen_hub.range_requests(weights_sha(tiny_musicgen_files)) == [None, f"bytes={kept}-"]
        assert backend_info(d, "musicgen")["status"] == "installed"


def test_a_failed_download_is_reported_with_a_hint_and_nothing_counts_as_installed(musicgen_hub, cache_dir):
    musicgen_hub.fail(status=404, times=1000, match="paths-info")
    with start_daemon(cache_dir, musicgen_hub) as d:
        d.call("download_backend", backend="musicgen")
        error = d.wait_for("download_error", timeout=60, backend="musicgen")
        assert error["code"] == "DOWNLOAD_FAILED"
        assert error["hint"]
        assert backend_info(d, "musicgen")["status"] == "not_installed"


def test_after_setup_the_model_loads_and_generates_with_the_hub_stopped(musicgen_hub, cache_dir):
    with start_daemon(cache_dir, musicgen_hub) as d:
        d.call("download_backend", backend="musicgen")
        d.wait_for("download_complete", timeout=120, backend="musicgen")
    musicgen_hub.stop()
    with start_daemon(cache_dir, musicgen_hub) as d:  # HF_ENDPOINT now points at a closed port
        reply = d.call("generate", prompt="lofi piano", duration_sec=5, seed=1, backend="musicgen")
        assert "result" in reply, reply
        done = d.wait_terminal(reply["result"]["track_id"], timeout=240)
        assert done["method"] == "generation_complete", done
        assert done["backend"] == "musicgen"
