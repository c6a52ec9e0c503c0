""":LofiSetup for a backend that goes remote: the download happens there, its progress and the
backend's status reach the local clients, and the model then runs there (a tiny random MusicGen
served by the fake hub on 127.0.0.1 as the pinned facebook/musicgen-small)."""

from __future__ import annotations

import pytest
from fakehub import FakeHub, FakeRepo
from tiny_musicgen import tiny_musicgen_hub_files

from lofi_daemon.models.manifests import musicgen_manifest
from remote_helpers import files_in, generator_argv, local_daemon, sidecar

MODEL = "facebook/musicgen-small"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    files = tiny_musicgen_hub_files(tmp_path_factory.mktemp("tiny-musicgen"))
    hub = FakeHub([FakeRepo(MODEL, files, commit=musicgen_manifest(MODEL).revision)]).start()
    yield hub
    hub.stop()


@pytest.mark.slow  # torch and a tiny MusicGen load on the remote: about 25 s on 2 busy cores
def test_setup_of_a_remote_backend_downloads_there_and_reports_here_then_generates_there(hub, tmp_path):
    remote = tmp_path / "gpu-box"
    argv = generator_argv(remote)
    argv[1:1] = [f"HF_ENDPOINT={hub.endpoint}", "HF_HUB_OFFLINE=1"]  # the remote's network: the fake hub
    with local_daemon(tmp_path / "laptop", argv, backends="musicgen") as d:
        assert d.call("download_backend", backend="musicgen")["result"] == {"started": True, "already_installed": False}
        done = d.wait_for("download_complete", 120, backend="musicgen")
        progress = d.notifications("download_progress", backend="musicgen")
        statuses = [s["status"] for s in d.notifications("backend_status", backend="musicgen")]
        listed = {b["name"]: b for b in d.call("get_backends")["result"]["backends"]}
        reply = d.call("generate", prompt="rain", duration_sec=5, backend="musicgen", seed=1)["result"]
        made = d.wait_terminal(reply["track_id"], 240)
    assert done["remote"] is True and progress and all(p["remote"] is True for p in progress)
    assert progress[-1]["overall_percent"] == 100
    assert "downloading" in statuses
    assert listed["musicgen"]["status"] == "installed" and listed["musicgen"]["remote"] is True
    repo = "models--facebook--musicgen-small"
    assert (remote / "models" / repo / "snapshots").is_dir() and not (tmp_path / "laptop" / "models" / repo).exists()
    assert made["method"] == "generation_complete", made
    assert sidecar(made["path"])["backend"] == "musicgen" and sidecar(made["path"])["remote"]["track_id"]
    assert len(files_in(tmp_path / "laptop" / "tracks")) == 2
