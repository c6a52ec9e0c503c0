"""setup() validation as the user meets it, and the plugin working without setup()."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("opts, message", [
    ({"progress": {"icon": 3}}, "(lofi) config: progress.icon must be a string, got 3 (number)"),
    ({"generate": {"duration_sec": 1000}}, "(lofi) config: generate.duration_sec must be a number from 5 to 240, got 1000 (number)"),
    ({"player": {"sink": 3}}, "(lofi) config: player.sink must be a non-empty string, got 3 (number)"),
    ({"progres": {}}, "(lofi) config: unknown option progres (known here: "),
])
def test_setup_names_a_bad_option_by_its_dotted_path_without_a_traceback(bare_nvim, opts, message):
    ok = bare_nvim.lua("return pcall(require('lofi').setup, ...)", opts)
    assert ok is True
    (shown,) = bare_nvim.messages()
    assert shown.startswith("lofi: " + message)
    assert "stack traceback" not in shown and "\n" not in shown


def test_setup_reports_every_problem_in_one_message_and_applies_the_rest(bare_nvim):
    bare_nvim.lua("""require('lofi').setup({
        autoplay = 'yes', progress = { icon = 3, done_ms = 7 }, generate = { duration_sec = 1 },
        log_file = '/tmp/lofi-test.log', progres = {} })""")
    (shown,) = bare_nvim.messages()
    for problem in ['autoplay must be true, false, "play" or "queue"', "progress.icon must be a string",
                    "generate.duration_sec must be a number from 5 to 240", "unknown option progres"]:
        assert problem in shown, shown
    cfg = bare_nvim.lua("return require('lofi.config').get()")
    assert (cfg["autoplay"], cfg["progress"]["icon"], cfg["progress"]["done_ms"], cfg["log_file"]) == (
        True, "♪", 7, "/tmp/lofi-test.log")


def test_the_plugin_works_without_setup_using_the_daemon_on_path(uninstalled_nvim, tmp_path):
    bare_nvim = uninstalled_nvim
    # No setup(): the daemon is found as `lofi-daemon` on PATH (the venv's bin here).
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "lofi-daemon").exists()
    bare_nvim.lua("vim.env.PATH = ...", f"{bin_dir}:/usr/bin:/bin")
    source = bare_nvim.lua("return require('lofi.daemon').resolve().source")
    assert source == "PATH"
    bare_nvim.cmd("LofiGenerate no setup needed 5")
    (done,) = bare_nvim.wait_done()
    assert done["status"] == "complete" and Path(done["path"]).is_file()
    # The default log file is under Neovim's log dir.
    log = Path(bare_nvim.lua("return require('lofi.daemon').log_file()"))
    assert log.is_relative_to(tmp_path / "xdg" / "state") and "lofi-daemon starting" in log.read_text()


def test_no_daemon_anywhere_is_one_error_that_says_to_install(uninstalled_nvim, tmp_path):
    bare_nvim = uninstalled_nvim
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    bare_nvim.lua("vim.env.PATH = ...", str(empty))
    bare_nvim.cmd("LofiGenerate rain 5")
    (message,) = bare_nvim.messages()
    assert "lofi-daemon not found" in message and ":LofiInstall" in message


def test_status_command_shows_backend_current_track_and_queue(nvim):
    nvim.lua("""
        require('lofi').generate({ prompt = 'status one', duration = 240 })
        require('lofi').generate({ prompt = 'status two', duration = 60 })
    """)
    nvim.wait("return require('lofi').status().current ~= nil and require('lofi').status().current.percent > 0",
              30, "the first track to make progress")
    nvim.cmd("LofiStatus")
    nvim.wait("return vim.iter(require('lofi.panel').lines()):any(function(l) return l:find('status two', 1, true) end)"
              " and vim.iter(require('lofi.panel').lines()):any(function(l) return l:find('^daemon pid') end)",
              15, "the panel with the queue and the daemon")
    nvim.wait("local w = require('lofi.panel').win() return #vim.api.nvim_buf_get_lines(vim.api.nvim_win_get_buf(w), 0, -1, false) > 6",
              15, "the panel drawn")
    status = nvim.lua("return vim.api.nvim_buf_get_lines(vim.api.nvim_win_get_buf(require('lofi.panel').win()), 0, -1, false)")
    assert status[:3] == ["nothing plays", "radio off", "queue"], status
    assert status[3].startswith('  making "status one" ') and status[4] == '  1. "status two"', status
    assert status[5].startswith("daemon pid ") and status[5].endswith("· backend procedural (ready)"), status


def test_lua_status_is_cached_and_lists_active_jobs(nvim):
    nvim.lua("require('lofi').generate({ prompt = 'listed', duration = 60 })")
    nvim.wait("return require('lofi').status().current ~= nil", 15, "the job to start")
    status = nvim.lua("return require('lofi').status()")
    assert status["running"] is True
    assert status["daemon"]["protocol"] == 1
    assert [j["prompt"] for j in status["jobs"]] == ["listed"]


def test_completion_offers_options_values_backends_and_tracks(nvim):
    complete = lambda line: nvim.lua("return vim.fn.getcompletion(..., 'cmdline')", line)  # noqa: E731
    assert complete("LofiGenerate rain sch") == ["scheduler="]
    assert complete("LofiGenerate rain scheduler=") == ["scheduler=euler", "scheduler=heun", "scheduler=pingpong"]
    assert complete("LofiSetup ") == ["procedural", "musicgen", "ace_step", "ace_step_15", "stable_audio_3"]
    assert complete("LofiInstall ") == ["models"]
    assert complete("LofiPlay ") == ["last"]
