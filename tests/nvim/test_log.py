""":LofiLog: one log (the daemon's), opened at its newest line, one line per job."""

from __future__ import annotations

import re


def test_lofi_log_opens_the_daemons_log_at_the_end_with_one_line_per_job(nvim):
    nvim.cmd("LofiGenerate logged rain 5s seed=11")
    nvim.wait_done()
    nvim.lua("require('lofi').generate({ prompt = 'logged long', duration = 240 })")
    nvim.wait("return require('lofi').status().current ~= nil", 15, "the long job to start")
    nvim.cmd("LofiCancel")
    nvim.wait_done(2)
    nvim.cmd("LofiLog")
    nvim.wait("return vim.api.nvim_buf_get_name(0):find('daemon.log', 1, true) ~= nil", 15, "the log to open")
    log = nvim.tmp / "cache" / "logs" / "daemon.log"
    assert nvim.lua("return vim.api.nvim_buf_get_name(0)") == str(log)
    last = nvim.lua("return vim.api.nvim_buf_line_count(0)")
    assert nvim.lua("return vim.api.nvim_win_get_cursor(0)[1]") == last

    text = log.read_text()
    done = re.findall(r"job (\w+) complete: prompt='logged rain' backend=procedural seed=11 duration=5s took=[\d.]+s", text)
    cancelled = re.findall(r"job (\w+) cancelled: prompt='logged long' backend=procedural seed=\d+ duration=240s", text)
    assert len(done) == 1 and len(cancelled) == 1, text
