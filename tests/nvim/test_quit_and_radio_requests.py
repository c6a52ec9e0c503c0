"""What people expect when they quit, or ask for a track while the radio plays: the last editor
quitting fades the music out (heard in the capture sink's PCM) and stops the radio, unless
player.keep_playing; a track generated during the radio plays next; only the editor that
asked for a job notifies about it. Real Neovims, the real shared daemon, real sinks."""

from __future__ import annotations

import time

import numpy as np

from nvim_child import pid_alive, wait_gone
from test_playback import setup as setup_stdio
from test_shared_daemon import daemon_pid, editors, setup_editor  # noqa: F401 (a fixture)

RATE = 48_000


def pcm(path) -> np.ndarray:
    data = np.fromfile(path, dtype="<f4")
    return data[: data.size - data.size % 2].reshape(-1, 2)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def wait_still(path, seconds: float = 1.0, timeout: float = 20.0) -> int:
    """The capture file's size once it has not grown for `seconds` (the sink stopped)."""
    deadline = time.monotonic() + timeout
    size, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now = path.stat().st_size if path.exists() else 0
        if now != size:
            size, since = now, time.monotonic()
        elif time.monotonic() - since >= seconds:
            return size
        time.sleep(0.05)
    raise AssertionError(f"{path} kept growing")


def playing(child, condition: str = "true", timeout: float = 30) -> None:
    child.wait(f"local s = require('lofi.playback').state() return s ~= nil and s.state == 'playing' and ({condition})",
               timeout, "music")


def test_the_last_editor_quitting_fades_the_music_out_and_stops_the_radio(editors, tmp_path):
    a, b = editors
    for child in editors:  # the daemon waits 5 s after the last client: the fade is over by then
        setup_editor(child, tmp_path, daemon={"idle_exit_sec": 5}, generate={"duration_sec": 5})
    cap = tmp_path / "sink.f32"
    a.cmd("LofiRadio rain on tin")
    playing(a, "s.radio")
    b.call("ping")  # the second editor is a client too
    pid = daemon_pid(a)
    a.quit()
    time.sleep(1.5)
    grown_while_b_stays = cap.stat().st_size
    time.sleep(0.5)
    assert cap.stat().st_size > grown_while_b_stays  # one editor left: the music plays on
    b.wait("local s = require('lofi.playback').state() return s and s.radio and "
           "s.next ~= vim.NIL and s.next ~= nil and s.next.percent == 100", 30, "the radio one track ahead")
    tracks_before = len(list((tmp_path / "cache" / "tracks").glob("*.json")))
    b.quit()

    size = wait_still(cap)
    out = pcm(cap)[: size // 8]
    last = out[-RATE:]  # the last second the sink heard
    tenth = RATE // 10
    start, end = rms(last[:2 * tenth]), rms(last[-tenth:])
    assert start > 0.01, start  # music, not silence, a second before the end
    assert end < 0.35 * start, (start, end)  # ... then a fade, not a cut
    assert rms(last[-RATE // 50:]) < 0.1 * start  # the last 20 ms are nearly silent
    assert wait_gone(pid, 15)  # then the daemon idles out
    assert len(list((tmp_path / "cache" / "tracks").glob("*.json"))) == tracks_before  # the radio made no more


def test_keep_playing_plays_on_after_the_last_editor_and_keeps_the_daemon(editors, tmp_path):
    a, b = editors
    b.quit()
    setup_editor(a, tmp_path, player={"sink": f"capture {tmp_path / 'sink.f32'} 1", "keep_playing": True})
    a.cmd("LofiGenerate tape hiss 5s")
    track = a.wait_done()[0]
    a.cmd(f"LofiPlay {track['track_id']}")
    playing(a)
    pid = daemon_pid(a)
    a.quit()
    cap = tmp_path / "sink.f32"
    time.sleep(1.0 + 1.5)  # past the idle grace (1 s in these tests)
    first = cap.stat().st_size
    time.sleep(0.5)
    assert cap.stat().st_size > first and pid_alive(pid)  # still playing, the daemon still there


def test_a_track_generated_while_the_radio_plays_plays_next(bare_nvim, tmp_path):
    nvim = bare_nvim
    setup_stdio(nvim, tmp_path, player={"sink": f"capture {tmp_path / 'sink.f32'} 1", "crossfade_sec": 0.5})
    nvim.cmd("LofiRadio rainy jazz")
    playing(nvim, "s.radio")
    nvim.cmd("LofiGenerate sad piano 5s")  # autoplay is on (the default)
    asked = nvim.wait_done()[-1]
    nvim.wait("return T.messages()[#T.messages()] == 'lofi: sad piano plays next, after this radio track'", 10,
              "the message")
    nvim.wait(f"local s = require('lofi.playback').state() return s.track_id == '{asked['track_id']}'", 30,
              "the asked-for track playing")
    state = nvim.lua("return require('lofi.playback').state()")
    assert state["radio"] is True and state["prompt"] == "sad piano"  # the radio goes on after it
    playing(nvim, f"s.track_id ~= '{asked['track_id']}' and s.prompt == 'rainy jazz'", 30)
    nvim.cmd("LofiStop")


def test_with_autoplay_off_the_message_says_where_the_track_waits(bare_nvim, tmp_path):
    nvim = bare_nvim
    setup_stdio(nvim, tmp_path, autoplay=False)
    nvim.cmd("LofiRadio rainy jazz")
    playing(nvim, "s.radio")
    nvim.cmd("LofiGenerate sad piano 5s")
    nvim.wait_done()
    nvim.wait("return T.messages()[#T.messages()] == "
              "'lofi: sad piano waits in :LofiTracks (autoplay is off; the radio plays on)'", 10, "the message")
    assert nvim.lua("return require('lofi.playback').state().prompt") == "rainy jazz"  # the radio plays on
    nvim.cmd("LofiStop")


def test_the_other_editor_gets_no_notification_for_a_job_it_did_not_ask_for(editors):
    a, b = editors
    b.call("ping")  # connected, hearing what the daemon tells every client
    a.cmd("LofiGenerate only mine 5s")
    done = a.wait_done()[0]
    b.wait(f"return #T.done() >= 1 and T.done()[1].data.track_id == '{done['track_id']}'", 30, "b hearing the job end")
    assert any("only mine" in m for m in a.messages()), a.messages()
    assert not any("only mine" in m or "generating" in m or "ready" in m for m in b.messages()), b.messages()
    assert any(e["name"] == "LofiProgress" for e in b.events())  # b's statusline did follow it
