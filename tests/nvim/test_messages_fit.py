"""No hit-enter prompts: with the built-in vim.notify at 80 columns, every message is one
line that fits, and text that needs more room opens in a float. A UI is attached to the
child (pynvim's ui_attach, 80x24) so Neovim really draws, and `mode == "r"` (blocking)
is the hit-enter prompt a user would have to answer.
"""

from __future__ import annotations

import time

import pytest


def answer_prompts(nvim) -> bool:
    """Press ENTER while Neovim waits at a prompt (requests other than fast ones wait too)."""
    seen = False
    for _ in range(20):
        if not nvim.nvim.api.get_mode()["blocking"]:
            return seen
        seen = True
        nvim.nvim.input("<CR>")
        time.sleep(0.05)
    return seen


@pytest.fixture
def ui_nvim(nvim):
    nvim.lua("vim.notify = T.builtin_notify")
    nvim.nvim.ui_attach(80, 24, rgb=True)
    yield nvim
    answer_prompts(nvim)


def wait_without_prompt(nvim, condition: str, timeout: float = 60.0) -> None:
    """Poll from outside (a request would wait behind a prompt) and fail on a hit-enter prompt."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answer_prompts(nvim):
            raise AssertionError(f"hit-enter prompt; messages:\n{history(nvim)}")
        if nvim.nvim.exec_lua(condition):
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {condition}")


def history(nvim) -> list[str]:
    return [line for line in nvim.nvim.exec_lua("return vim.fn.execute('messages')").splitlines() if line]


def test_the_ready_message_of_a_long_prompt_fits_one_line(ui_nvim):
    nvim = ui_nvim
    nvim.nvim.exec_lua("vim.cmd('LofiGenerate a very long prompt about rain on the windows of a quiet cafe at night 5s')",
                       async_=True)
    wait_without_prompt(nvim, "return #T.done('generation') == 1")
    time.sleep(0.3)  # the message is drawn on the next redraw
    wait_without_prompt(nvim, "return true")
    ready = [m for m in history(nvim) if "ready" in m]
    assert len(ready) == 1 and len(ready[0]) <= 80, ready
    assert ready[0].endswith(".wav")


def test_a_long_error_is_one_line_and_the_whole_text_opens_in_a_float(ui_nvim):
    nvim = ui_nvim
    long = "the daemon refused this because " + "of a very long reason " * 6
    nvim.nvim.exec_lua(f"vim.schedule(function() require('lofi.notify').error(require('lofi.errors').new("
                       f"'INVALID_PARAMS', {long!r}, 'First line of a hint.\\nSecond line of it.')) end)", async_=True)
    wait_without_prompt(nvim, "return require('lofi.view').win() ~= nil")
    time.sleep(0.3)
    wait_without_prompt(nvim, "return true")
    lines = nvim.lua("return vim.api.nvim_buf_get_lines(vim.api.nvim_win_get_buf(require('lofi.view').win()), 0, -1, false)")
    assert "Second line of it." in "\n".join(lines)
    assert long.strip() in "\n".join(lines)


def test_lofi_status_opens_a_float_instead_of_a_multi_line_message(ui_nvim):
    nvim = ui_nvim
    nvim.nvim.exec_lua("vim.cmd('LofiStatus')", async_=True)
    wait_without_prompt(nvim, "return require('lofi.panel').win() ~= nil")
    time.sleep(0.3)
    wait_without_prompt(nvim, "return true")
    lines = nvim.lua("return vim.api.nvim_buf_get_lines(vim.api.nvim_win_get_buf(require('lofi.panel').win()), 0, -1, false)")
    assert lines[0] == "nothing plays"
