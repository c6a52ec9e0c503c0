"""The daemon's player from Neovim: :LofiRadio, :LofiPause, :LofiNext, :LofiVolume, :LofiStop,
:LofiPlay, autoplay, the now-playing statusline and a failed sink's message.
Real headless Neovim, real daemon, real sinks (a capture file at real-time pace, a failing one)."""

from __future__ import annotations

import re

from nvim_child import DAEMON_CMD


def setup(nvim, tmp_path, **extra) -> None:
    opts = dict(daemon_cmd=DAEMON_CMD, log_file=str(nvim.daemon_log), progress={"done_ms": 60000},
                generate={"duration_sec": 5}, player={"sink": f"capture {tmp_path / 'sink.f32'} 1"})
    opts.update(extra)
    nvim.setup(**opts)


def state(nvim) -> dict:
    return nvim.call("get_playback")["result"]


def wait_state(nvim, lua_condition: str, what: str, timeout: float = 60) -> dict:
    nvim.wait(f"local s = require('lofi.playback').state(); return s ~= nil and ({lua_condition})", timeout, what)
    return nvim.lua("return require('lofi.playback').state()")


def last_message(nvim, text: str) -> None:
    nvim.wait(f"return T.messages()[#T.messages()] == {text!r}", 10, f"the message {text!r}")


def test_radio_plays_with_the_statusline_showing_what_plays(bare_nvim, tmp_path):
    nvim = bare_nvim
    setup(nvim, tmp_path)
    nvim.cmd("LofiRadio rainy jazz")
    wait_state(nvim, "s.state == 'playing' and s.radio", "the radio playing")
    # First, while the first track renders, its own song may play as a bridge, streamed as it is
    # rendered: no length yet, and no "AI in" (nothing else is coming). State and line are read together.
    seen = nvim.lua("local s = require('lofi.playback').state(); return { s.track_id, s.prompt, "
                    "type(s.radio_bridge) == 'table' and s.radio_bridge.track_id or '', require('lofi').statusline() }")
    if seen[0] == seen[2]:
        assert seen[1] == "rainy jazz" and re.fullmatch(r"♪ rainy jazz \d:\d\d( · next \d+%)?", seen[3]), seen
    first = wait_state(nvim, "s.state == 'playing' and s.radio and type(s.radio_bridge) ~= 'table'",
                       "the first radio track playing")
    assert first["prompt"] == "rainy jazz"
    nvim.wait("return require('lofi').statusline():find('/0:05', 1, true) ~= nil", 10, "the track's length shown")
    line = nvim.statusline()
    assert re.fullmatch(r"♪ rainy jazz \d:\d\d/0:05( · next \d+%)?", line), line
    assert (tmp_path / "sink.f32").stat().st_size > 0

    # :LofiNext goes to the next radio track once it is ready, and names it.
    wait_state(nvim, "s.next ~= vim.NIL and s.next ~= nil and s.next.percent == 100", "the next track ready")
    nvim.cmd("LofiNext")
    wait_state(nvim, f"s.track_id ~= nil and s.track_id ~= '{first['track_id']}'", "the next radio track")
    last_message(nvim, "lofi: next: rainy jazz")

    # :LofiRadio without a prompt toggles it off, and the music stops.
    nvim.cmd("LofiRadio")
    wait_state(nvim, "s.state == 'stopped' and not s.radio", "radio off")
    last_message(nvim, "lofi: radio off")
    nvim.wait("return require('lofi').statusline() == ''", 10, "an empty statusline")


def test_pause_toggles_and_volume_moves_by_steps(bare_nvim, tmp_path):
    nvim = bare_nvim
    setup(nvim, tmp_path)
    nvim.cmd("LofiGenerate rain on a window 5")  # autoplay: "play"
    done = nvim.wait_done()[0]
    wait_state(nvim, f"s.state == 'playing' and s.track_id == '{done['track_id']}'", "autoplay")

    nvim.cmd("LofiPause")
    wait_state(nvim, "s.state == 'paused'", "paused")
    assert nvim.statusline().startswith("♪ ⏸ rain on a window ")
    last_message(nvim, "lofi: paused")
    nvim.cmd("LofiPause")
    wait_state(nvim, "s.state == 'playing'", "playing again")
    last_message(nvim, "lofi: playing")

    # Each change is said in one line and shows in the statusline; a clamp is said plainly.
    nvim.cmd("LofiVolume +20")
    wait_state(nvim, "s.volume == 120", "volume 120")
    last_message(nvim, "lofi: volume 120%")
    nvim.wait("return require('lofi').statusline():find(' · vol 120%', 1, true) ~= nil", 10, "the volume shown")
    nvim.cmd("LofiVolume +500")
    wait_state(nvim, "s.volume == 150", "volume capped at 150")
    last_message(nvim, "lofi: volume 150%: the most it goes (620% asked)")
    nvim.cmd("LofiVolume -200")
    wait_state(nvim, "s.volume == 0", "volume clamped at 0")
    last_message(nvim, "lofi: muted (volume 0%): the least it goes (-50% asked)")
    nvim.wait("return require('lofi').statusline():find(' · muted', 1, true) ~= nil", 10, "muted shown")
    nvim.cmd("LofiVolume 80")
    wait_state(nvim, "s.volume == 80", "volume 80")
    assert state(nvim)["volume"] == 80
    last_message(nvim, "lofi: volume 80%")
    nvim.cmd("LofiVolume loud")
    assert "volume must be a whole percent: N, +N or -N (0-150), got loud" in nvim.messages()[-1]
    nvim.cmd("LofiVolume 5.5")
    assert "got 5.5" in nvim.messages()[-1]
    assert state(nvim)["volume"] == 80

    nvim.cmd("LofiStop")
    wait_state(nvim, "s.state == 'stopped'", "stopped")
    last_message(nvim, "lofi: stopped")
    nvim.cmd("LofiPlay last")
    wait_state(nvim, f"s.state == 'playing' and s.track_id == '{done['track_id']}'", "playing the last track")
    nvim.wait("return T.messages()[#T.messages()] == 'lofi: playing rain on a window'", 10, "the announcement")
    nvim.cmd("LofiStop")


def test_a_failed_sink_is_one_warning_with_its_own_message(bare_nvim, tmp_path):
    nvim = bare_nvim
    setup(nvim, tmp_path, autoplay=False,
          # Like a real player, it takes the first blocks into its pipe before it fails.
          player={"sink": "sh -c 'sleep 0.1; echo \"audio open error: no such card\" >&2; exit 3'"})
    nvim.cmd("LofiGenerate rain 5")
    nvim.wait_done()
    nvim.cmd("LofiPlay last")
    nvim.wait("return #T.messages(vim.log.levels.WARN) > 0", 30, "the warning")
    warnings = nvim.messages(3)  # WARN and up
    assert len(warnings) == 1, warnings
    assert "audio open error: no such card" in warnings[0] and "player.sink" in warnings[0]
    assert not any(m.startswith("lofi: playing") for m in nvim.messages())  # it never said it plays
    assert state(nvim)["state"] == "stopped"
    assert nvim.call("ping")["result"]["status"] == "ok"  # the daemon lives on


def test_autoplay_queue_waits_for_the_end_of_what_plays(bare_nvim, tmp_path):
    nvim = bare_nvim
    setup(nvim, tmp_path, autoplay="queue")
    nvim.cmd("LofiGenerate first track 5")
    first = nvim.wait_done(1)[-1]
    wait_state(nvim, f"s.track_id == '{first['track_id']}'", "the first track")
    nvim.cmd("LofiGenerate second track 5")
    second = nvim.wait_done(2)[-1]
    s = wait_state(nvim, f"s.queued == '{second['track_id']}'", "the second track queued")
    assert s["track_id"] == first["track_id"]
    nvim.cmd("LofiStop")


def test_a_percent_in_the_prompt_survives_statusline_evaluation(bare_nvim, tmp_path):
    nvim = bare_nvim
    setup(nvim, tmp_path)
    nvim.cmd("LofiRadio 100% chill")
    wait_state(nvim, "s.state == 'playing' and s.prompt == '100% chill'", "the radio playing")
    raw = nvim.statusline()
    assert raw.startswith("♪ 100% chill ")
    # What lualine does with a component's text: evaluate it as 'statusline' syntax again.
    shown = nvim.lua("return vim.api.nvim_eval_statusline(require('lofi').statusline({ escape = true }), {}).str")
    assert shown.startswith("♪ 100% chill ")
    nvim.cmd("LofiStop")
