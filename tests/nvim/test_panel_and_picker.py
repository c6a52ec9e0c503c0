"""The player panel (:LofiStatus / :Lofi), the track picker on vim.ui.select, <Plug> mappings,
highlight groups, completion, and :LofiRadio resuming the last radio prompt. Real headless
Neovim, real daemon (procedural backend), a capture sink at real-time pace."""

from __future__ import annotations

import re

from nvim_child import DAEMON_CMD, start_child, stop_child
from test_player_and_tracks import make_track


def panel_lines(nvim) -> list[str]:
    return nvim.lua("local w = require('lofi.panel').win() "
                    "return w and vim.api.nvim_buf_get_lines(vim.api.nvim_win_get_buf(w), 0, -1, false) or {}")


def panel_open(nvim) -> bool:
    return nvim.lua("return require('lofi.panel').win() ~= nil")


def type_keys(nvim, keys: str) -> None:
    """Keys as the user types them (not a mapping call): what `q` does is what is tested."""
    nvim.nvim.input(keys)
    nvim.lua("return 1")  # an RPC round trip: the typed keys have been handled


def test_the_panel_is_focused_updates_while_open_and_q_closes_it_without_recording(nvim):
    track = make_track(nvim, "panel track")
    nvim.cmd("LofiStatus")
    assert nvim.lua("return vim.api.nvim_get_current_win() == require('lofi.panel').win()")
    nvim.wait("return vim.iter(require('lofi.panel').lines()):any(function(l) return l:find('backend procedural', 1, true) end)",
              10, "the daemon facts")
    lines = panel_lines(nvim)
    assert lines[0] == "nothing plays" and "radio off" in lines
    assert lines[-1] == "p pause  n next  +/- volume  r radio  s stop  t tracks  u unload  q/Esc close"
    assert re.search(r"^daemon pid \d+ · 1 editor · backend procedural \(ready\)$", "\n".join(lines), re.M), lines

    # Music starts while it is open: the panel shows it without being asked.
    nvim.call("play", {"track_id": track["track_id"]})
    nvim.wait("return (require('lofi.panel').lines()[1] or ''):find('▶ playing panel track', 1, true) ~= nil", 10,
              "the panel showing what plays")
    nvim.wait("local l = vim.api.nvim_buf_get_lines(vim.api.nvim_win_get_buf(require('lofi.panel').win()), 0, -1, false) "
              "return l[1] == '▶ playing panel track'", 10, "the window's own text")
    second = panel_lines(nvim)[1]
    assert re.fullmatch(r"  procedural · \d:\d\d/0:05 · volume 100% · loop on", second), second

    # Its keys act on the player.
    type_keys(nvim, "p")
    nvim.wait("return (require('lofi.playback').state() or {}).state == 'paused'", 10, "paused by the panel's p")
    nvim.wait("return (require('lofi.panel').lines()[1] or ''):find('⏸ paused', 1, true) ~= nil", 10, "paused shown")

    type_keys(nvim, "q")
    assert not panel_open(nvim)
    assert nvim.lua("return vim.fn.reg_recording()") == ""
    assert nvim.lua("return #vim.api.nvim_list_wins()") == 1
    nvim.cmd("LofiStop")


def test_esc_closes_the_panel_and_leaving_it_leaves_no_window(nvim):
    nvim.cmd("Lofi")
    assert panel_open(nvim)
    type_keys(nvim, "<Esc>")
    assert not panel_open(nvim) and nvim.lua("return #vim.api.nvim_list_wins()") == 1

    nvim.cmd("LofiStatus")
    nvim.cmd("wincmd p")  # the user goes back to the buffer
    nvim.wait("return require('lofi.panel').win() == nil", 5, "the panel closing")
    assert nvim.lua("return #vim.api.nvim_list_wins()") == 1
    assert nvim.lua("return vim.fn.reg_recording()") == ""


def test_the_track_picker_goes_through_vim_ui_select_newest_first_with_the_playing_one_marked(nvim):
    older = make_track(nvim, "older track", 1)
    make_track(nvim, "radio-like", 2)
    make_track(nvim, "radio-like", 3)
    nvim.cmd(f"LofiPlay {older['track_id']}")
    nvim.wait(f"return (require('lofi.playback').now_playing() or {{}}).track_id == '{older['track_id']}'", 10,
              "the older track playing")
    nvim.wait("return T.messages()[#T.messages()] == 'lofi: playing older track'", 10, "the announcement")

    # A picker plugin replaces vim.ui.select; this one records what it is given and picks.
    nvim.lua("""
        T.picked = {}
        vim.ui.select = function(items, opts, on_choice)
          local labels = vim.tbl_map(opts.format_item, items)
          table.insert(T.picked, { prompt = opts.prompt, kind = opts.kind, labels = labels })
          local want = table.remove(T.selects, 1)
          for i, label in ipairs(labels) do
            if want and label:find(want, 1, true) then return on_choice(items[i], i) end
          end
          on_choice(nil, nil)
        end
    """)
    nvim.lua("vim.list_extend(T.selects, { 'radio-like', 'seed 2', 'Copy the path' })")
    nvim.cmd("LofiTracks")
    nvim.wait("return #T.picked == 3", 10, "three pickers")
    picked = nvim.lua("return T.picked")
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d"
    rows = picked[0]["labels"]
    assert picked[0]["prompt"] == "lofi tracks (newest first)" and picked[0]["kind"] == "lofi.tracks"
    assert len(rows) == 2, rows  # two same-prompt tracks in a row are one row
    assert re.fullmatch(rf"  {stamp}  ×2  procedural  radio-like", rows[0]), rows
    assert re.fullmatch(rf"▶ {stamp}  0:05  procedural  older track", rows[1]), rows
    assert [re.sub(stamp, "T", label) for label in picked[1]["labels"]] == ["  T  0:05 · seed 3", "  T  0:05 · seed 2"]
    assert picked[2]["labels"] == ["Play", "Play next", "Regenerate with the same seed", "Delete", "Copy the path"]
    path = nvim.lua("return vim.fn.getreg('\"')")
    assert path.endswith(".wav") and nvim.messages()[-1].startswith("lofi: copied ")

    # Play next: after what plays, crossfaded.
    nvim.lua("vim.list_extend(T.selects, { 'radio-like', 'seed 3', 'Play next' })")
    nvim.cmd("LofiTracks")
    nvim.wait("return T.messages()[#T.messages()] == 'lofi: radio-like plays next'", 10, "play next")
    nvim.wait("local s = require('lofi.playback').state() return s and s.queued ~= vim.NIL and s.queued ~= nil",
              10, "the track queued")
    nvim.cmd("LofiStop")


def test_plug_mappings_and_highlight_groups(nvim):
    for name in ["pause", "next", "stop", "volume-up", "volume-down", "radio", "status", "tracks", "generate"]:
        assert nvim.lua("return vim.fn.maparg(...)", f"<Plug>(lofi-{name})", "n").startswith("<Cmd>Lofi"), name
    assert nvim.lua("return vim.fn.maparg('<Plug>(lofi-volume-up)', 'n')") == "<Cmd>LofiVolume +10<CR>"
    assert nvim.lua("return vim.api.nvim_get_hl(0, { name = 'LofiPlaying' }).link") == "String"
    assert nvim.lua("return vim.api.nvim_get_hl(0, { name = 'LofiPaused' }).link") == "Comment"

    make_track(nvim, "mapped")
    nvim.cmd("LofiPlay last")
    nvim.wait("return (require('lofi.playback').state() or {}).state == 'playing'", 10, "playing")
    nvim.lua("vim.keymap.set('n', '<Space>mp', '<Plug>(lofi-pause)')")  # a keymap from the docs' table
    type_keys(nvim, " mp")
    nvim.wait("return (require('lofi.playback').state() or {}).state == 'paused'", 10, "paused through <Plug>")
    assert nvim.lua("return require('lofi').statusline({ highlight = true })").startswith("%#LofiPaused#♪ ⏸ mapped ")
    assert nvim.lua("return require('lofi').highlight()") == "LofiPaused"
    nvim.cmd("LofiStop")


def test_completion_offers_backends_durations_and_recent_prompts(nvim):
    make_track(nvim, "chill rain on glass")
    complete = lambda line: nvim.lua("return vim.fn.getcompletion(..., 'cmdline')", line)  # noqa: E731
    assert {"30s", "1m", "2m"} <= set(complete("LofiGenerate "))
    assert "chill rain on glass" in complete("LofiGenerate ")
    assert complete("LofiGenerate chill rain o") == ["on glass"]  # the rest, from the word being typed
    assert "backend=procedural" in complete("LofiGenerate backend=")
    assert complete("LofiGenerate duration=1") == ["duration=1m"]
    assert complete("LofiRadio chi") == ["chill rain on glass"]
    assert "procedural" in complete("LofiBackend ")


def test_lofi_radio_without_a_prompt_resumes_the_last_radio_prompt_in_a_new_session(nvim, nvim_bin, tmp_path):
    nvim.cmd("LofiRadio night drive")
    nvim.wait("local s = require('lofi.playback').state() return s and s.radio and s.state == 'playing'", 30, "radio")
    nvim.cmd("LofiRadio")  # off
    nvim.wait("local s = require('lofi.playback').state() return s and not s.radio", 10, "radio off")
    stop_child(nvim)

    (tmp_path / "later").mkdir()
    later = start_child(nvim_bin, tmp_path / "later")  # the same user (XDG dirs), a new Neovim
    try:
        later.setup(daemon_cmd=DAEMON_CMD, log_file=str(tmp_path / "later.log"),
                    player={"sink": f"capture {tmp_path / 'later.f32'} 1", "radio_prompt": "the configured default"})
        later.cmd("LofiRadio")
        later.wait("local s = require('lofi.playback').state() return s and s.radio and s.state == 'playing'", 30,
                   "the radio")
        assert later.lua("return require('lofi.playback').state().prompt") == "night drive"
        assert later.messages()[-1].startswith("lofi: radio: night drive")
        later.cmd("LofiStop")
    finally:
        stop_child(later)
