"""The daemon dying under the plugin: the user is told once, jobs fail, it comes back."""

from __future__ import annotations

import os
import signal

from nvim_child import wait_gone


def start_long_track(nvim) -> int:
    nvim.cmd("LofiGenerate a long track 240")
    nvim.wait("return require('lofi').status().current ~= nil and require('lofi').status().current.percent > 0",
              30, "the track to make progress")
    return nvim.lua("return require('lofi.daemon').pid()")


def test_daemon_killed_mid_job_tells_the_user_and_the_next_command_works(nvim):
    pid = start_long_track(nvim)
    os.kill(pid, signal.SIGKILL)

    (done,) = nvim.wait_done(1, timeout=15)
    assert done["status"] == "error" and done["error"]["code"] == "DAEMON_EXITED"
    nvim.wait("return #T.messages(vim.log.levels.ERROR) > 0", 10, "the crash message")
    (message,) = nvim.messages(4)
    assert "stopped unexpectedly (killed by signal 9)" in message
    assert "1 track failed" in message
    assert "restarted it" in message
    assert str(nvim.daemon_log) in message
    assert nvim.statusline() == "♪ failed"

    new_pid = nvim.lua("return require('lofi.daemon').pid()")
    assert new_pid and new_pid != pid
    nvim.cmd("LofiGenerate after the crash 5")
    assert nvim.wait_done(2)[1]["status"] == "complete"


def test_a_second_crash_is_not_restarted_but_the_next_command_starts_it(nvim):
    first = start_long_track(nvim)
    os.kill(first, signal.SIGKILL)
    nvim.wait("return require('lofi.daemon').pid() ~= nil and require('lofi.daemon').pid() ~= " + str(first), 15,
              "the automatic restart")
    second = nvim.lua("return require('lofi.daemon').pid()")
    os.kill(second, signal.SIGKILL)
    nvim.wait("return #T.messages(vim.log.levels.ERROR) >= 2", 15, "the second crash message")

    assert "not restarting it again" in nvim.messages(4)[1]
    assert nvim.lua("return require('lofi.daemon').is_running()") is False
    nvim.cmd("LofiGenerate after two crashes 5")
    assert nvim.wait_done(2)[-1]["status"] == "complete"


def test_a_daemon_that_cannot_be_found_is_one_clear_error(bare_nvim):
    bare_nvim.setup(daemon_cmd=["/nonexistent/lofi-daemon"])
    bare_nvim.cmd("LofiGenerate rain 5")
    (message,) = bare_nvim.messages()
    assert "daemon_cmd[1] is not executable: /nonexistent/lofi-daemon" in message
    assert "Fix daemon_cmd" in message


def test_quitting_neovim_shuts_the_daemon_and_the_player_down(nvim):
    nvim.cmd("LofiGenerate goodbye 5")
    nvim.wait_done()
    nvim.cmd("LofiPlay last")
    nvim.wait("return require('lofi.playback').now_playing() ~= nil", 10, "the player")
    daemon_pid = nvim.lua("return require('lofi.daemon').pid()")
    player_pid = nvim.call("get_playback")["result"]["worker_pid"]  # the daemon's playback worker
    nvim.quit()
    assert wait_gone(daemon_pid, 5), "the daemon outlived Neovim"
    assert wait_gone(player_pid, 5), "the player outlived Neovim"
    assert "daemon stopped" in nvim.daemon_log.read_text()  # a graceful shutdown, not a kill
