""":LofiGenerate end to end: real Neovim, real daemon (procedural backend), real files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import soundfile as sf


def test_generate_command_writes_a_track_while_the_statusline_goes_from_progress_to_done(nvim):
    nvim.cmd("LofiGenerate lofi hip hop, jazzy piano 5")
    done = nvim.wait_done()

    assert done[0]["status"] == "complete"
    path = Path(done[0]["path"])
    assert path.is_file() and path.is_relative_to(nvim.tmp / "cache")
    info = sf.info(str(path))
    assert info.samplerate == 48000
    assert abs(info.duration - 5.0) < 0.1

    lines = [e["statusline"] for e in nvim.events() if e["name"] == "LofiProgress"]
    assert any(re.fullmatch(r"♪ \d+%( ~\d+:\d\d)?", line) for line in lines), lines
    percents = [int(m.group(1)) for line in lines if (m := re.match(r"♪ (\d+)%", line))]
    assert percents == sorted(percents), "percent went backwards"
    assert nvim.statusline() == "♪ done"
    assert any("ready" in m and str(path) in m for m in nvim.messages())


def test_generate_without_a_prompt_asks_for_one(nvim):
    nvim.lua("table.insert(T.inputs, 'rain on a window')")
    nvim.cmd("LofiGenerate 5")
    nvim.wait_done()
    assert nvim.lua("return T.asked[1]") == {"kind": "input", "prompt": "lofi prompt: "}
    tracks = nvim.call("list_tracks")["result"]["tracks"]
    assert [t["prompt"] for t in tracks] == ["rain on a window"]
    assert tracks[0]["duration_sec"] == 5.0


def test_cancelling_the_prompt_input_generates_nothing(nvim):
    nvim.cmd("LofiGenerate")  # vim.ui.input answers nil: the user pressed <Esc>
    assert nvim.lua("return #T.asked") == 1
    assert not nvim.lua("return require('lofi.daemon').is_running()")


@pytest.mark.parametrize("filetype, lines, prompt", [
    ("lua", ["-- mellow synthwave", "  -- with soft drums", "unrelated line"], "mellow synthwave with soft drums"),
    ("python", ["# ambient rain,", "#   slow piano"], "ambient rain, slow piano"),
    ("c", ["/* ambient rain", " * slow piano */"], "ambient rain slow piano"),
    ("text", ["-- dashes stay in plain text", "second line"], "-- dashes stay in plain text second line"),
])
def test_a_visual_selection_becomes_the_prompt_without_comment_leaders(nvim, filetype, lines, prompt):
    nvim.nvim.current.buffer[:] = lines
    nvim.cmd(f"setlocal filetype={filetype}")
    nvim.cmd(r'exe "normal! ggVj\<Esc>"')
    nvim.cmd("'<,'>LofiGenerate 5s")
    nvim.wait_done()
    tracks = nvim.call("list_tracks")["result"]["tracks"]
    assert tracks[0]["prompt"] == prompt


@pytest.mark.parametrize("args, prompt, seconds", [
    ("rain on a roof 6s", "rain on a roof", 6.0),
    ("rain on a roof 0:07", "rain on a roof", 7.0),
    ("rain on a roof duration=5s", "rain on a roof", 5.0),
])
def test_durations_take_a_unit(nvim, args, prompt, seconds):
    nvim.cmd(f"LofiGenerate {args}")
    (done,) = nvim.wait_done()
    assert done["status"] == "complete"
    (track,) = nvim.call("list_tracks")["result"]["tracks"]
    assert (track["prompt"], track["duration_sec"]) == (prompt, seconds)


def test_the_prompt_input_is_parsed_like_the_command_line(nvim):
    nvim.lua("table.insert(T.inputs, 'sad rainy jazz 6s seed=5')")
    nvim.cmd("LofiGenerate")
    nvim.wait_done()
    (track,) = nvim.call("list_tracks")["result"]["tracks"]
    assert (track["prompt"], track["duration_sec"], track["seed"]) == ("sad rainy jazz", 6.0, 5)


def test_seed_option_reaches_the_daemon_and_same_request_comes_from_the_cache(nvim):
    nvim.cmd("LofiGenerate cafe at night 5 seed=1234")
    first = nvim.wait_done(1)[0]
    nvim.cmd("LofiGenerate cafe at night 5 seed=1234")
    second = nvim.wait_done(2, timeout=10)[1]
    assert second["status"] == "complete"
    assert second["path"] == first["path"]
    tracks = nvim.call("list_tracks")["result"]["tracks"]
    assert len(tracks) == 1 and tracks[0]["seed"] == 1234


def test_an_unknown_option_is_named_in_the_users_words_with_the_backend(nvim):
    # steps= is ACE-Step's inference_steps; the procedural backend has no such parameter.
    nvim.cmd("LofiGenerate rain 5s steps=40")
    nvim.wait("return #T.messages(vim.log.levels.ERROR) > 0", 15, "an error message")
    (error,) = nvim.messages(4)
    assert error == "lofi: steps= (inference_steps) is not a parameter of procedural. procedural takes section_offset."
    assert nvim.lua("return #require('lofi.jobs').active()") == 0


def test_a_duration_out_of_range_states_the_range_once(nvim):
    nvim.cmd("LofiGenerate rain 2s")
    nvim.wait("return #T.messages(vim.log.levels.ERROR) > 0", 15, "an error message")
    (error,) = nvim.messages(4)
    assert "duration_sec" in error and error.count("240") == 1, error


def test_an_unknown_backend_lists_the_backends_once(nvim):
    nvim.cmd("LofiGenerate rain 5s backend=jazzbot")
    nvim.wait("return #T.messages(vim.log.levels.ERROR) > 0", 15, "an error message")
    (error,) = nvim.messages(4)
    assert "jazzbot" in error and len(re.findall(r"\bace_step\b", error)) == 1, error


def test_lua_api_generate_calls_back_once_with_the_track(nvim):
    nvim.lua("""
        T.results = {}
        require('lofi').generate({ prompt = 'api track', duration = 5, seed = 7 }, function(err, track)
          table.insert(T.results, { err = err, track = track })
        end)
    """)
    nvim.wait("return #T.results == 1", 30, "the generate callback")
    result = nvim.lua("return T.results[1]")
    assert "err" not in result
    assert result["track"]["seed"] == 7 and Path(result["track"]["path"]).is_file()
    assert nvim.lua("return #T.results") == 1


def test_statusline_is_a_cached_string_that_never_starts_the_daemon(nvim):
    assert nvim.statusline() == ""
    assert nvim.lua("return require('lofi.daemon').is_running()") is False
