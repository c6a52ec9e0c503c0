"""``lofi setup ace-step-1.5`` from a shell: downloads, converts, and the track generates offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import soundfile as sf
from fakehub import FakeHub, FakeRepo

from lofi_daemon.models.manifests import ACE_STEP_15_MAIN_REPO


def lofi(cache: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "LOFI_CACHE_DIR": str(cache), "LOFI_CONFIG_DIR": str(cache / "config"),
            "OMP_NUM_THREADS": "1", **env}
    return subprocess.run([sys.executable, "-m", "lofi_daemon.cli", *args], capture_output=True, text=True,
                          env=full, timeout=280)


def test_cli_setup_converts_so_the_backend_is_installed_and_generates_with_the_hub_gone(tmp_path, hub_files):
    cache = tmp_path / "cache"
    with FakeHub([FakeRepo(ACE_STEP_15_MAIN_REPO, hub_files)]) as hub:
        run = lofi(cache, "setup", "ace-step-1.5", HF_ENDPOINT=hub.endpoint, HF_HUB_OFFLINE="0")
    assert run.returncode == 0, run.stderr
    backends = json.loads(lofi(cache, "backends", "--json").stdout)["backends"]
    assert {b["name"]: b["status"] for b in backends}["ace_step_15"] == "installed"
    made = lofi(cache, "generate", "rain on a window", "--backend", "ace-step-1.5", "--duration", "10",
                "--seed", "2", HF_HUB_OFFLINE="1")
    assert made.returncode == 0, made.stderr
    info = sf.info(made.stdout.strip())
    assert (info.samplerate, info.frames) == (48000, 250 * 1920)
