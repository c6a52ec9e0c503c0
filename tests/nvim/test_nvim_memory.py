"""What the daemon holds, seen from Neovim: :LofiStatus, :checkhealth lofi and :LofiUnload,
against the real daemon that the plugin starts with its model.idle_unload_sec."""

from __future__ import annotations

import re

from nvim_child import DAEMON_CMD
from test_health import health_report


def start(nvim, **opts) -> None:
    nvim.setup(daemon_cmd=DAEMON_CMD, log_file=str(nvim.daemon_log), autoplay=False, **opts)


def test_checkhealth_and_status_show_the_memory_and_the_idle_unload_the_plugin_asked_for(bare_nvim):
    start(bare_nvim, model={"idle_unload_sec": 42})
    report = health_report(bare_nvim)
    assert re.search(r"OK memory: daemon [\d.]+ MB, no model loaded", report), report
    assert "OK an idle model is unloaded after 42 s (model.idle_unload_sec)" in report

    bare_nvim.cmd("LofiStatus")
    bare_nvim.wait("return require('lofi.view').win() ~= nil", 15, "the status float")
    lines = bare_nvim.lua("return vim.api.nvim_buf_get_lines(vim.api.nvim_win_get_buf(require('lofi.view').win()), 0, -1, false)")
    assert any(re.fullmatch(r"  memory: daemon [\d.]+ MB, no model loaded", line) for line in lines), lines


def test_daemon_env_wins_over_the_config_and_zero_keeps_the_model(bare_nvim):
    start(bare_nvim, model={"idle_unload_sec": 42}, daemon_env={"LOFI_IDLE_UNLOAD_SEC": "0"})
    info = bare_nvim.call("daemon_info")
    assert info["result"]["idle_unload_sec"] == 0, info
    assert "an idle model stays loaded (model.idle_unload_sec = 0)" in health_report(bare_nvim)


def test_lofi_unload_with_no_model_loaded_says_so(bare_nvim):
    start(bare_nvim)
    bare_nvim.cmd("LofiUnload")
    bare_nvim.wait("for _, m in ipairs(T.messages(0)) do if m:find('no model was loaded', 1, true) then return true end end",
                   30, "the :LofiUnload answer")
