"""Setup never trusts sizes alone: after a same-size corruption of a weight file (one flipped
byte), ``download_backend`` and ``lofi setup`` re-hash what changed since the install record
and repair only the damaged file, instead of answering "already installed"."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest
from daemon_client import Daemon
from fakehub import FakeHub, FakeRepo

from lofi_daemon.models.manifests import musicgen_manifest
from lofi_daemon.models.store import ModelStore
from tiny_musicgen import tiny_musicgen_hub_files

MODEL = "facebook/musicgen-small"


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory) -> dict[str, bytes]:
    return tiny_musicgen_hub_files(tmp_path_factory.mktemp("tiny-musicgen"))


@pytest.fixture
def hub(tiny_files):
    fake = FakeHub([FakeRepo(MODEL, tiny_files, commit=musicgen_manifest(MODEL).revision)]).start()
    yield fake
    fake.stop()


def flip_one_byte(path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))  # same size; a new mtime


def weights(cache_dir):
    return ModelStore(cache_dir / "models").snapshot_dir(musicgen_manifest(MODEL)) / "model.safetensors"


def test_download_backend_finds_a_same_size_corruption_and_repairs_only_that_file(cache_dir, hub, tiny_files):
    env = {"HF_ENDPOINT": hub.endpoint}
    with Daemon.start(cache_dir, env) as d:
        d.call("download_backend", backend="musicgen")
        d.wait_for("download_complete", timeout=120, backend="musicgen")
        fetched_before = len(hub.range_requests())
        flip_one_byte(weights(cache_dir))

        answer = d.call("download_backend", backend="musicgen", timeout=120)["result"]
        assert answer == {"started": True, "already_installed": False}
        d.wait_for("download_complete", timeout=120, backend="musicgen")
        assert hashlib.sha256(weights(cache_dir).read_bytes()).digest() == hashlib.sha256(
            tiny_files["model.safetensors"]).digest()
        assert len(hub.range_requests()) == fetched_before + 1  # only the damaged file again
        # Nothing changed since: installed, without re-hashing or re-fetching anything.
        assert d.call("download_backend", backend="musicgen")["result"] == {"started": False, "already_installed": True}
        assert len(hub.range_requests()) == fetched_before + 1


def test_lofi_setup_does_not_say_nothing_to_download_over_a_corrupt_file(cache_dir, hub):
    env = {**os.environ, "LOFI_CACHE_DIR": str(cache_dir), "LOFI_CONFIG_DIR": str(cache_dir / "config"),
           "HF_ENDPOINT": hub.endpoint, "HF_HUB_OFFLINE": "0"}

    def setup() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lofi_daemon.cli", "setup", "musicgen"], capture_output=True,
                              text=True, env=env, timeout=300)

    assert setup().returncode == 0
    flip_one_byte(weights(cache_dir))
    run = setup()
    assert run.returncode == 0, run.stderr
    assert "nothing to download" not in run.stderr and "musicgen is installed" in run.stderr
    assert "nothing to download" in setup().stderr


def test_two_setups_of_a_damaged_backend_at_once_start_one_repair(cache_dir, hub, monkeypatch):
    """Two editors on one shared daemon press :LofiSetup together while it re-hashes."""
    import asyncio

    from lofi_daemon.app import App
    from lofi_daemon.errors import DownloadInProgress
    from lofi_daemon.rpc.params import BackendParams
    from lofi_daemon.settings import Settings

    with Daemon.start(cache_dir, {"HF_ENDPOINT": hub.endpoint}) as d:
        d.call("download_backend", backend="musicgen")
        d.wait_for("download_complete", timeout=120, backend="musicgen")
    flip_one_byte(weights(cache_dir))
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)

    async def both_at_once():
        heard: list[str] = []
        app = App(Settings.load(), lambda method, params: heard.append(method))
        app.start()
        try:
            answers = await asyncio.gather(
                *(app.download_backend(BackendParams(backend="musicgen")) for _ in range(2)), return_exceptions=True)
            for _ in range(2400):  # let the repair finish (it is one small file) before closing
                if {"download_complete", "download_error"} & set(heard):
                    break
                await asyncio.sleep(0.05)
            return answers, heard
        finally:
            await app.close()

    answers, heard = asyncio.run(both_at_once())
    # One repair starts. The other request either finds it running, or (the repair is one small
    # file, and its re-hash may end after the repair did) finds the backend whole again: both are
    # true answers; what must not happen is a second repair, or a crash on a file being replaced.
    assert answers.count({"started": True, "already_installed": False}) == 1, answers
    other = next(a for a in answers if a != {"started": True, "already_installed": False})
    assert isinstance(other, DownloadInProgress) or other == {"started": False, "already_installed": True}, answers
    assert heard.count("download_complete") == 1 and "download_error" not in heard, heard
