"""The statusline text as statuslines really use it: through nvim_eval_statusline.

Two ways in: `%{v:lua.require'lofi'.statusline()}` (the result of %{} is not evaluated
again, so the raw text is right there), and lualine, which pastes a component's text into
the 'statusline' string it builds, so the text is statusline syntax and a bare `%` is E539.
lualine itself is not installable from a registry the tests can reach; `T.lualine_eval`
below builds the string the way lualine does (lualine/component.lua draw(): the function's
text, one space of padding each side, the section highlight; lualine.lua statusline():
sections a..z with `%=` before x) around other components, then evaluates it.
"""

from __future__ import annotations

import re

import pytest

LUALINE = r"""
-- lualine's statusline around one lofi component: mode, file, modified flag, the
-- component in section x, cursor position in z. Returns {text=...} or {err=...}.
function T.lualine_eval(component)
  local ok, out = pcall(component)  -- lualine's function_component pcalls the function
  out = ok and type(out) == 'string' and out or ''
  local x = #out > 0 and ('%#lualine_x_normal# ' .. out .. ' ') or ''
  local stl = '%#lualine_a_normal# NORMAL %#lualine_c_normal# %f %m%#lualine_c_normal#%=' .. x
    .. '%#lualine_z_normal# %l:%v '
  local eval_ok, res = pcall(vim.api.nvim_eval_statusline, stl, { maxwidth = 200 })
  if not eval_ok then
    return { err = tostring(res) }
  end
  return { text = res.str }
end

T.evaluated = {}
vim.api.nvim_create_autocmd('User', {
  pattern = { 'LofiProgress', 'LofiDone' },
  callback = function()
    local raw = require('lofi').statusline()
    local plain_ok, plain = pcall(vim.api.nvim_eval_statusline, "%{v:lua.require'lofi'.statusline()}", {})
    table.insert(T.evaluated, {
      raw = raw,
      plain = plain_ok and plain.str or ('ERROR ' .. tostring(plain)),
      lualine = T.lualine_eval(require('lofi.lualine')),
    })
  end,
})
"""


def check_states(states: list[dict]) -> None:
    assert states
    for s in states:
        assert "err" not in s["lualine"], s
        assert s["plain"] == s["raw"], s
        if s["raw"]:
            assert f" {s['raw']} " in s["lualine"]["text"], s


def test_a_real_generation_shows_in_lualine_and_plain_statuslines_at_every_step(nvim):
    nvim.lua(LUALINE)
    nvim.nvim.current.buffer[:] = ["x"]
    nvim.cmd("LofiGenerate lofi hip hop, jazzy piano 5s")
    nvim.wait_done()
    states = nvim.lua("return T.evaluated")
    assert any(re.fullmatch(r"♪ \d+%( ~\d+:\d\d)?", s["raw"]) for s in states), states
    check_states(states)
    # The rest of lualine's line is alive too: the cursor position is drawn.
    assert states[-1]["lualine"]["text"].rstrip().endswith("1:1")


@pytest.mark.parametrize("notifications, expected", [
    ([("generation_started", {"track_id": "a"})], "♪ 0%"),
    ([("generation_progress", {"track_id": "a", "percent": 42.7, "eta_sec": 8.2})], "♪ 42% ~0:08"),
    ([("generation_progress", {"track_id": "a", "percent": 10}),
      ("generation_started", {"track_id": "b"}), ("generation_started", {"track_id": "c"})], "♪ 10% +2"),
    ([("download_progress", {"backend": "musicgen", "overall_percent": 37.5})], "♪ ↓ musicgen 37%"),
    ([("generation_progress", {"track_id": "a", "percent": 100}),
      ("generation_complete", {"track_id": "a", "path": "/tmp/x.wav"})], "♪ done"),
    ([("generation_error", {"track_id": "a", "code": "MODEL_INFERENCE_FAILED", "message": "x"})], "♪ failed"),
    ([("generation_cancelled", {"track_id": "a"})], "♪ cancelled"),
    ([("download_complete", {"backend": "musicgen"})], "♪ installed"),
    ([("download_error", {"backend": "musicgen", "code": "DOWNLOAD_FAILED", "message": "x"})], "♪ setup failed"),
])
def test_every_statusline_state_evaluates_in_both_forms(nvim, notifications, expected):
    nvim.lua(LUALINE)
    for method, params in notifications:
        nvim.lua("require('lofi.jobs').handle(...)", method, params)
    assert nvim.statusline() == expected
    check_states(nvim.lua("return T.evaluated"))
    now = nvim.lua("return T.lualine_eval(require('lofi.lualine'))")
    assert now == {"text": now["text"]} and f" {expected} " in now["text"]


def test_the_escaped_form_doubles_each_percent(nvim):
    nvim.lua("require('lofi.jobs').handle('generation_progress', { track_id = 'a', percent = 5 })")
    assert nvim.lua("return require('lofi').statusline({ escape = true })") == "♪ 5%%"
    assert nvim.lua("return require('lofi').statusline()") == "♪ 5%"
