"""Playback through an external player, and the track library picker (:LofiTracks)."""

from __future__ import annotations

from pathlib import Path

from nvim_child import DAEMON_CMD, FakePlayer, wait_gone


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


def test_player_discovery_takes_the_first_of_the_order_found_on_path(nvim, tmp_path):
    bin_dir = tmp_path / "players"
    ffplay, aplay = FakePlayer(bin_dir, "ffplay"), FakePlayer(bin_dir, "aplay")
    nvim.setup(daemon_cmd=DAEMON_CMD, log_file=str(nvim.daemon_log))  # no player.cmd: discover
    nvim.lua("vim.env.PATH = ...", str(bin_dir))
    assert nvim.lua("return { require('lofi.player').discover() }") == ["ffplay", str(ffplay.path)]

    track = make_track(nvim)  # autoplay
    nvim.wait("return require('lofi.player').now_playing() ~= nil", 5, "the player")
    assert ffplay.last_call()[1] == f"-nodisp -autoexit -loglevel quiet {track['path']}"
    assert aplay.calls() == []

    # With ffplay gone, the next in the order is used.
    ffplay.path.unlink()
    assert nvim.lua("return { require('lofi.player').discover() }") == ["aplay", str(aplay.path)]


def test_lofi_stop_ends_playback(nvim, fake_player):
    make_track(nvim)
    nvim.wait("return require('lofi.player').now_playing() ~= nil", 5, "the player")
    pid = fake_player.last_call()[0]
    nvim.cmd("LofiStop")
    assert wait_gone(pid, 5)
    assert nvim.lua("return require('lofi.player').now_playing()") is None
    nvim.cmd("LofiStop")
    assert nvim.messages()[-1] == "lofi: nothing is playing"


def test_autoplay_off_plays_nothing_until_asked(nvim, fake_player):
    nvim.setup(daemon_cmd=DAEMON_CMD, log_file=str(nvim.daemon_log), player={"cmd": [str(fake_player.path)]},
               autoplay=False)
    track = make_track(nvim)
    assert fake_player.calls() == []
    nvim.cmd("LofiPlay last")
    assert fake_player.last_call()[1] == track["path"]


def test_player_cmd_places_the_path_where_asked(nvim, fake_player):
    nvim.setup(daemon_cmd=DAEMON_CMD, log_file=str(nvim.daemon_log),
               player={"cmd": [str(fake_player.path), "--file={path}", "--loop"]})
    track = make_track(nvim)
    nvim.wait("return require('lofi.player').now_playing() ~= nil", 5, "the player")
    assert fake_player.last_call()[1] == f"--file={track['path']} --loop"


def test_no_player_is_one_warning_however_many_tracks(nvim, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    nvim.setup(daemon_cmd=DAEMON_CMD, log_file=str(nvim.daemon_log))
    nvim.lua("vim.env.PATH = ...", str(empty))
    make_track(nvim, "one", 1)
    make_track(nvim, "two", 2)
    warnings = nvim.messages(3)
    assert len(warnings) == 1 and "no audio player found" in warnings[0] and "player.cmd" in warnings[0]


def test_play_by_id_finds_the_track_in_the_library(nvim, fake_player):
    track = make_track(nvim)
    nvim.cmd("LofiStop")
    # By id, the track is looked up in the daemon's library.
    nvim.cmd(f"LofiPlay {track['track_id']}")
    nvim.wait("return require('lofi.player').now_playing() ~= nil", 10, "the player")
    assert fake_player.last_call()[1] == track["path"]
    nvim.cmd("LofiPlay tnope")
    nvim.wait("return T.messages()[#T.messages()]:find('no track tnope') ~= nil", 10, "the error")


def test_tracks_picker_plays_regenerates_with_the_same_seed_and_deletes(nvim, fake_player):
    track = make_track(nvim, "picker track", 77)
    nvim.cmd("LofiStop")

    nvim.lua("vim.list_extend(T.selects, { 'picker track', 'Play' })")
    nvim.cmd("LofiTracks")
    nvim.wait("return require('lofi.player').now_playing() ~= nil", 10, "the player")
    assert fake_player.last_call()[1] == track["path"]
    picker = nvim.lua("return T.asked")
    assert picker[0]["labels"] == ["picker track  0:05 · procedural · seed 77"]
    assert picker[1]["labels"] == ["Play", "Regenerate with the same seed", "Delete"]

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
