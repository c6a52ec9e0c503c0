"""Playing library tracks through the daemon's player, and the track library picker (:LofiTracks)."""

from __future__ import annotations

from pathlib import Path


def make_track(nvim, prompt: str = "library track", seed: int = 5) -> dict:
    nvim.lua("""
        local prompt, seed = ...
        T.made = nil
        require('lofi').generate({ prompt = prompt, duration = 5, seed = seed }, function(err, track)
          T.made = { err = err, track = track }
        end)
    """, prompt, seed)
    nvim.wait("return T.made ~= nil", 30, "the track")
    made = nvim.lua("return T.made")
    assert "err" not in made, made
    return made["track"]


def playing(nvim) -> str | None:
    """The track id the daemon's player plays now (as the plugin last heard it)."""
    return nvim.lua("local s = require('lofi.playback').now_playing() return s and s.track_id")


def test_lofi_stop_ends_playback(nvim):
    track = make_track(nvim)
    nvim.cmd("LofiPlay last")
    nvim.wait("return require('lofi.playback').now_playing() ~= nil", 10, "the player")
    assert playing(nvim) == track["track_id"]
    nvim.cmd("LofiStop")
    nvim.wait("return require('lofi.playback').now_playing() == nil", 10, "silence")
    assert nvim.call("get_playback")["result"]["state"] == "stopped"


def test_autoplay_off_plays_nothing_until_asked(nvim):
    track = make_track(nvim)  # the fixture turns autoplay off
    assert nvim.call("get_playback")["result"]["state"] == "stopped"
    nvim.cmd("LofiPlay last")
    nvim.wait("return require('lofi.playback').now_playing() ~= nil", 10, "the player")
    assert playing(nvim) == track["track_id"]


def test_play_by_id_finds_the_track_in_the_library(nvim):
    track = make_track(nvim)
    other = make_track(nvim, "another", 6)
    nvim.cmd(f"LofiPlay {track['track_id']}")
    nvim.wait(f"return (require('lofi.playback').now_playing() or {{}}).track_id == '{track['track_id']}'", 10,
              "the first track")
    assert other["track_id"] != track["track_id"]
    nvim.cmd("LofiPlay tnope")
    # (the first track's "playing ..." may come after the error: the sink confirms it later)
    nvim.wait("return vim.iter(T.messages()):any(function(m) return m:find('no track with id', 1, true) end)", 10,
              "the error")


def test_tracks_picker_plays_regenerates_with_the_same_seed_and_deletes(nvim):
    track = make_track(nvim, "picker track", 77)

    nvim.lua("vim.list_extend(T.selects, { 'picker track', 'Play' })")
    nvim.cmd("LofiTracks")
    nvim.wait("return require('lofi.playback').now_playing() ~= nil", 10, "the player")
    assert playing(nvim) == track["track_id"]
    nvim.cmd("LofiStop")
    picker = nvim.lua("return T.asked")
    assert len(picker[0]["labels"]) == 1 and picker[0]["labels"][0].endswith("  0:05  procedural  picker track")
    assert picker[1]["labels"] == ["Play", "Play next", "Regenerate with the same seed", "Delete", "Copy the path"]

    # Regenerating the same request with the same seed comes back from the cache: same file.
    nvim.lua("vim.list_extend(T.selects, { 'picker track', 'Regenerate' })")
    nvim.cmd("LofiTracks")
    done = nvim.wait_done(2)
    assert done[-1]["status"] == "complete" and done[-1]["path"] == track["path"]

    nvim.lua("vim.list_extend(T.selects, { 'picker track', 'Delete', 'Delete' })")
    nvim.cmd("LofiTracks")
    nvim.wait("return T.messages()[#T.messages()]:find('deleted') ~= nil", 10, "the delete")
    assert nvim.call("list_tracks")["result"]["tracks"] == []
    assert not Path(track["path"]).exists()


def test_tracks_with_an_empty_library_says_so(nvim):
    nvim.cmd("LofiTracks")
    nvim.wait("return #T.messages() > 0", 10, "a message")
    assert nvim.messages() == ["lofi: no tracks yet; make one with :LofiGenerate"]
