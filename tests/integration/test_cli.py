"""The `lofi` command line, run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
from fakehub import FakeHub, FakeRepo
from tiny_musicgen import tiny_musicgen_hub_files

from lofi_daemon.models.manifests import musicgen_manifest


def lofi(cache_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "LOFI_CACHE_DIR": str(cache_dir), "LOFI_CONFIG_DIR": str(cache_dir / "config"),
                **(env or {})}
    return subprocess.run([sys.executable, "-m", "lofi_daemon.cli", *args], capture_output=True, text=True,
                          env=full_env, timeout=300)


def test_generate_prints_only_the_path_and_draws_progress_on_stderr(cache_dir, tmp_path):
    out = tmp_path / "song.wav"
    run = lofi(cache_dir, "generate", "rainy night, mellow piano", "--duration", "6", "--seed", "3", "--out", str(out))
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str(out)
    assert "generating [" in run.stderr and "100.0%" in run.stderr
    info = sf.info(str(out))
    assert info.samplerate == 48000 and abs(info.frames / 48000 - 6) < 0.1


def test_a_second_identical_generate_is_served_from_the_cache(cache_dir):
    first = lofi(cache_dir, "generate", "rain", "--duration", "5", "--seed", "1")
    again = lofi(cache_dir, "generate", "rain", "--duration", "5", "--seed", "1")
    assert first.stdout == again.stdout and "cached" in again.stderr


def test_bad_input_exits_non_zero_with_the_hint(cache_dir):
    run = lofi(cache_dir, "generate", "rain", "--duration", "2")
    assert run.returncode == 2 and run.stdout == ""
    assert "between 5 and 240" in run.stderr and "hint:" in run.stderr
    run = lofi(cache_dir, "generate", "rain", "--backend", "ace-step")
    assert run.returncode == 2 and ":LofiSetup ace-step" in run.stderr


def test_backends_and_tracks_list_what_is_there(cache_dir):
    lofi(cache_dir, "generate", "rain", "--duration", "5", "--seed", "9")
    backends = json.loads(lofi(cache_dir, "backends", "--json").stdout)
    assert backends["default_backend"] == "procedural"
    assert {b["name"]: b["status"] for b in backends["backends"]}["musicgen"] == "not_installed"
    tracks = json.loads(lofi(cache_dir, "tracks", "--json").stdout)
    assert [t["seed"] for t in tracks] == [9]
    assert "procedural" in lofi(cache_dir, "tracks").stdout


@pytest.fixture(scope="module")
def musicgen_files(tmp_path_factory) -> dict[str, bytes]:
    return tiny_musicgen_hub_files(tmp_path_factory.mktemp("tiny-musicgen"))


def test_setup_downloads_a_backend_with_a_progress_bar(cache_dir, musicgen_files):
    model = "facebook/musicgen-small"
    hub = FakeHub([FakeRepo(model, musicgen_files, commit=musicgen_manifest(model).revision)]).start()
    try:
        run = lofi(cache_dir, "setup", "musicgen", env={"HF_ENDPOINT": hub.endpoint, "HF_HUB_OFFLINE": "0"})
    finally:
        hub.stop()
    assert run.returncode == 0, run.stderr
    assert "downloading [" in run.stderr and "musicgen is installed" in run.stderr
    backends = json.loads(lofi(cache_dir, "backends", "--json").stdout)
    assert {b["name"]: b["status"] for b in backends["backends"]}["musicgen"] == "installed"
    # and it generates offline, with the hub gone
    made = lofi(cache_dir, "generate", "lofi", "--backend", "musicgen", "--duration", "5", "--seed", "1",
                env={"OMP_NUM_THREADS": "1"})
    assert made.returncode == 0, made.stderr
    assert sf.info(made.stdout.strip()).samplerate == 48000
