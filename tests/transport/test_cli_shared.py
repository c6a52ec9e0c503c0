"""The `lofi` CLI uses the running shared daemon: its tracks reach every client."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from socket_client import SharedDaemon


def lofi(daemon: SharedDaemon, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**SharedDaemon.env(daemon.cache), "LOFI_SOCKET": str(daemon.path)}
    return subprocess.run([sys.executable, "-m", "lofi_daemon.cli", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_a_track_generated_by_the_cli_is_made_by_the_daemon_and_seen_by_its_clients(daemon):
    with daemon.client() as editor:
        run = lofi(daemon, "generate", "terminal rain", "--duration", "5", "--seed", "4")
        assert run.returncode == 0, run.stderr
        assert f"via the daemon on {daemon.path}" in run.stderr
        path = run.stdout.strip()
        done = editor.wait_for("generation_complete", path=path)  # the editor heard about it
        assert done["prompt"] == "terminal rain"
        listed = json.loads(lofi(daemon, "tracks", "--json").stdout)
        assert [t["track_id"] for t in listed] == [done["track_id"]]
        assert daemon.log().count("client") >= 2  # the CLI connected as a client


def test_cli_errors_from_the_daemon_keep_their_hint(daemon):
    run = lofi(daemon, "generate", "rain", "--backend", "ace-step")
    assert run.returncode == 2 and ":LofiSetup ace-step" in run.stderr


def test_in_process_does_not_touch_the_daemon(daemon):
    run = lofi(daemon, "--in-process", "generate", "alone", "--duration", "5", "--seed", "2")
    assert run.returncode == 0, run.stderr
    assert "via the daemon" not in run.stderr
    assert os.path.exists(run.stdout.strip())


def test_lofi_setup_follows_only_its_own_download_on_a_shared_daemon(root, tmp_path, monkeypatch):
    """Another editor's download of another backend failing meanwhile is not this setup's end."""
    from fakehub import FakeHub, FakeRepo
    from socket_client import wait_until
    from tiny_musicgen import tiny_musicgen_hub_files

    from lofi_daemon.models.manifests import musicgen_manifest

    model = "facebook/musicgen-small"
    files = tiny_musicgen_hub_files(tmp_path / "tiny-musicgen")
    with FakeHub([FakeRepo(model, files, commit=musicgen_manifest(model).revision)]) as hub:
        hub.throttle(1_500_000)  # a few seconds of download
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        with SharedDaemon.start(root) as daemon, daemon.client() as editor:
            env = {**SharedDaemon.env(daemon.cache), "LOFI_SOCKET": str(daemon.path)}
            setup = subprocess.Popen([sys.executable, "-m", "lofi_daemon.cli", "setup", "musicgen"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            wait_until(lambda: editor.notifications("download_progress"), 60, "the musicgen download to start")
            # ace-step is not on this hub: its download fails at once, for every client to hear.
            assert editor.call("download_backend", backend="ace-step")["result"]["started"] is True
            wait_until(lambda: editor.notifications("download_error"), 60, "the ace-step download to fail")
            _, err = setup.communicate(timeout=120)
    assert setup.returncode == 0, err
    assert "musicgen is installed" in err
