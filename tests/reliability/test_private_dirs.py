"""The user's own data is private: cache and config folders are 0700, tracks, sidecars and
config.json 0600; a relative LOFI_CACHE_DIR / LOFI_CONFIG_DIR is refused (it would land in
whatever folder the editor was started from), and the default folder is used instead."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

from daemon_client import Daemon

from lofi_daemon.settings import Settings


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_cache_config_and_track_files_are_private(cache_dir):
    cache_dir.mkdir(mode=0o755)
    os.chmod(cache_dir, 0o755)  # an existing, world-readable cache is made private too
    with Daemon.start(cache_dir) as d:
        reply = d.call("generate", prompt="private", duration_sec=5, seed=1)
        done = d.wait_terminal(reply["result"]["track_id"])
        d.call("set_backend", backend="procedural")
    config = cache_dir / "config"  # daemon_client puts LOFI_CONFIG_DIR there
    assert mode(cache_dir) == 0o700 and mode(cache_dir / "tracks") == 0o700 and mode(config) == 0o700
    track = cache_dir / "tracks" / f"{done['track_id']}.wav"
    assert mode(track) == 0o600 and mode(track.with_suffix(".json")) == 0o600
    assert mode(config / "config.json") == 0o600


def test_a_relative_cache_dir_is_refused_and_the_default_is_used(tmp_path):
    env = {"LOFI_CACHE_DIR": "relcache", "LOFI_CONFIG_DIR": "relconfig", "XDG_CACHE_HOME": str(tmp_path / "xc"),
           "XDG_CONFIG_HOME": str(tmp_path / "xg"), "HOME": str(tmp_path / "home")}
    settings = Settings.load(env=env)
    assert settings.cache_dir.is_absolute() and settings.cache_dir.name == "lofi.nvim"
    assert any("LOFI_CACHE_DIR='relcache' is a relative path" in p for p in settings.problems)
    assert any("LOFI_CONFIG_DIR" in p for p in settings.problems)


def test_the_daemon_started_in_some_folder_with_a_relative_cache_dir_leaves_that_folder_alone(tmp_path):
    cwd = tmp_path / "project"
    cwd.mkdir()
    env = {**os.environ, "LOFI_CACHE_DIR": "relcache", "XDG_CACHE_HOME": str(tmp_path / "xc"),
           "LOFI_CONFIG_DIR": str(tmp_path / "cfg")}
    run = subprocess.run([sys.executable, "-m", "lofi_daemon.cli", "generate", "rain", "--duration", "5",
                          "--seed", "1"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert list(cwd.iterdir()) == []
    assert run.stdout.strip().startswith(str(tmp_path / "xc" / "lofi.nvim"))
    assert "relative path" in run.stderr
