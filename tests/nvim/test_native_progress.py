"""Neovim 0.12's native progress messages, with a real generation from the real daemon.

The wheel's Neovim is 0.11.4, which has no progress messages, so what ran here is a
stand-in for 0.12's nvim_echo: `has('nvim-0.12')` answers 1 and nvim_echo refuses a
kind="progress" message the way 0.12 does when a required field is missing or wrong
(`source`, `status`, an integer `percent` 0..100), and otherwise records it. Where the test
machine's nvim is 0.12 or newer, the real nvim_echo is used instead (LOFI_NVIM may point
to one) and the messages are read back from the real API.
"""

from __future__ import annotations

import pytest

STAND_IN_012 = r"""
local real = vim.fn.has('nvim-0.12') == 1
T.progress = {}
if not real then
  local has = vim.fn.has
  vim.fn.has = function(feature)
    if feature == 'nvim-0.12' then return 1 end
    return has(feature)
  end
end
local echo = vim.api.nvim_echo
local next_id = 0
vim.api.nvim_echo = function(chunks, history, opts)
  opts = opts or {}
  if opts.kind == 'progress' then
    if type(opts.source) ~= 'string' or opts.source == '' then
      error("Invalid 'source': expected String, got nil", 0)
    end
    if not vim.tbl_contains({ 'running', 'success', 'failed', 'cancel' }, opts.status) then
      error("Invalid 'status': " .. tostring(opts.status), 0)
    end
    if opts.percent ~= nil and (type(opts.percent) ~= 'number' or opts.percent % 1 ~= 0
        or opts.percent < 0 or opts.percent > 100) then
      error("Invalid 'percent': " .. tostring(opts.percent), 0)
    end
    local id = opts.id
    if real then
      id = echo(chunks, history, opts)
    else
      if not id then next_id = next_id + 1; id = next_id end
    end
    table.insert(T.progress, { text = chunks[1][1], id = id, source = opts.source, status = opts.status,
      percent = opts.percent, title = opts.title })
    return id
  end
  return echo(chunks, history, opts)
end
"""


@pytest.fixture
def native_nvim(nvim):
    nvim.setup(progress={"fidget": False, "native": True, "done_ms": 60000})
    nvim.lua(STAND_IN_012)
    return nvim


def test_progress_goes_to_native_messages_with_source_status_and_percent(native_nvim):
    nvim = native_nvim
    nvim.cmd("LofiGenerate native progress 5")
    assert nvim.wait_done()[0]["status"] == "complete"
    progress = nvim.lua("return T.progress")
    assert progress, nvim.messages()
    assert {p["source"] for p in progress} == {"lofi"}
    assert len({p["id"] for p in progress}) == 1  # one message updated in place
    assert progress[-1]["status"] == "success" and progress[-1]["percent"] == 100
    assert all(p["status"] == "running" for p in progress[:-1])
    # Neovim draws the percent itself; the text does not repeat it.
    assert not any("%" in p["text"] for p in progress), progress
    # Live progress went to Neovim, so vim.notify only heard the result.
    assert not any("generating" in m for m in nvim.messages())
    assert any("ready" in m for m in nvim.messages())


def test_a_failing_native_sink_falls_back_to_vim_notify_once(native_nvim):
    nvim = native_nvim
    # A Neovim whose progress messages refuse everything (an API that changed again).
    nvim.lua("""
        local echo = vim.api.nvim_echo
        vim.api.nvim_echo = function(chunks, history, opts)
          if opts and opts.kind == 'progress' then error("Invalid 'kind': progress", 0) end
          return echo(chunks, history, opts)
        end
    """)
    nvim.cmd("LofiGenerate fallback progress 5")
    assert nvim.wait_done()[0]["status"] == "complete"
    messages = nvim.messages()
    warnings = [m for m in nvim.messages(3) if "progress messages failed" in m]
    assert len(warnings) == 1 and "Invalid 'kind'" in warnings[0], messages
    assert any(m.startswith('lofi: generating "fallback progress"') for m in messages), messages
    assert any("ready" in m for m in messages)


def test_checkhealth_tries_the_native_sink_it_reports(native_nvim):
    nvim = native_nvim
    nvim.cmd("checkhealth lofi")
    nvim.wait("return vim.bo.filetype == 'checkhealth' and vim.api.nvim_buf_line_count(0) > 10", 120, "the report")
    report = "\n".join(nvim.nvim.current.buffer[:])
    assert "OK live progress: Neovim's progress messages" in report
    assert nvim.lua("return T.progress[#T.progress].source") == "lofi"


def test_checkhealth_reports_a_native_sink_that_fails_and_the_fallback(native_nvim):
    nvim = native_nvim
    nvim.lua("""
        vim.api.nvim_echo = function(chunks, history, opts)
          if opts and opts.kind == 'progress' then error("Invalid 'source': expected String, got nil", 0) end
        end
    """)
    nvim.cmd("checkhealth lofi")
    nvim.wait("return vim.bo.filetype == 'checkhealth' and vim.api.nvim_buf_line_count(0) > 10", 120, "the report")
    report = "\n".join(nvim.nvim.current.buffer[:])
    assert "WARNING native progress failed: Invalid 'source'" in report, report
    assert "OK live progress: vim.notify" in report
