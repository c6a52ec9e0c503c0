"""The crash message quotes only what the dead daemon wrote after the last request."""

from __future__ import annotations

import os
import signal


def test_a_stale_log_line_from_start_up_is_not_quoted_as_the_cause(nvim):
    assert nvim.call("ping")["result"]["status"] == "ok"
    nvim.wait(f"return (io.open({str(nvim.daemon_log)!r}) or {{read = function() return '' end}}):read('*a')"
              ":find('lofi-daemon starting', 1, true) ~= nil", 15, "the start-up line in the log")
    assert nvim.call("get_status")["result"].get("current") is None  # the last request: it logs nothing
    os.kill(nvim.lua("return require('lofi.daemon').pid()"), signal.SIGKILL)
    nvim.wait("return #T.messages(vim.log.levels.ERROR) > 0", 15, "the crash message")
    (message,) = nvim.messages(4)
    assert "killed by signal 9" in message
    assert "lofi-daemon starting" not in message
    assert "it wrote nothing after the last request" in message


def test_what_the_daemon_wrote_before_it_died_is_quoted(bare_nvim, tmp_path):
    script = tmp_path / "dies.sh"
    script.write_text('#!/bin/sh\nread ping\nread request\necho "boom: the disk is on fire" >&2\nexit 3\n')
    script.chmod(0o755)
    bare_nvim.setup(daemon_cmd=[str(script)], log_file=str(bare_nvim.daemon_log), auto_restart=False)
    bare_nvim.lua("require('lofi').request('get_status', nil, function() end)")
    bare_nvim.wait("return #T.messages(vim.log.levels.ERROR) > 0", 15, "the crash message")
    (message,) = bare_nvim.messages(4)
    assert "exit code 3" in message and "last log line: boom: the disk is on fire" in message
