"""What people expect when they quit, or ask for a track while the radio plays: the last editor
quitting fades the music out (heard in the capture sink's PCM) and stops the radio, unless
player.keep_playing; a track generated during the radio plays next; only the editor that
asked for a job notifies about it. Real Neovims, the real shared daemon, real sinks."""

from __future__ import annotations

import os
import signal
import time

import numpy as np

from nvim_child import pid_alive, start_child, stop_child, wait_gone
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


def steady_tone(path, seconds: float = 5.0, amplitude: float = 0.3):
    """A sine at one level: any change of level in the capture is the player's doing."""
    import soundfile as sf

    t = np.arange(int(seconds * RATE)) / RATE
    tone = (amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    sf.write(path, np.stack([tone, tone], axis=1), RATE)
    return path


def test_the_last_editor_quitting_fades_the_music_out(editors, tmp_path):
    a, b = editors
    cap = tmp_path / "sink.f32"
    tone = steady_tone(tmp_path / "tone.wav")
    a.lua("require('lofi.playback').play({ path = ... })", str(tone))
    playing(a)
    b.call("ping")  # the second editor is a client too
    pid = daemon_pid(a)
    a.quit()
    time.sleep(1.5)
    grown_while_b_stays = cap.stat().st_size
    time.sleep(0.5)
    assert cap.stat().st_size > grown_while_b_stays  # one editor left: the music plays on
    b.quit()

    size = wait_still(cap)
    last = pcm(cap)[: size // 8][-RATE:]  # the last second the sink heard
    level = rms(pcm(cap)[RATE // 2:RATE])  # the tone as it played
    tenths = [rms(last[i:i + RATE // 10]) for i in range(0, RATE, RATE // 10)]
    assert level > 0.15
    assert tenths[0] > 0.9 * level  # a second before the end: full level
    assert all(later <= earlier + 1e-3 for earlier, later in zip(tenths, tenths[1:])), tenths  # ever lower
    assert 0.4 * level < tenths[5] < 0.85 * level, tenths  # half-way through it is half-way down: a fade
    assert tenths[-1] < 0.2 * level, tenths  # ... to silence, not a cut
    assert wait_gone(pid, 15)  # then the daemon idles out


def test_the_last_editor_quitting_stops_the_radio(editors, tmp_path, nvim_bin):
    a, b = editors
    b.quit()
    setup_editor(a, tmp_path, daemon={"idle_exit_sec": 12}, generate={"duration_sec": 5})
    a.cmd("LofiRadio rain on tin")
    playing(a, "s.radio")
    a.wait("local s = require('lofi.playback').state() return s.next ~= vim.NIL and s.next ~= nil "
           "and s.next.percent == 100", 30, "the radio one track ahead")
    pid = daemon_pid(a)
    tracks = tmp_path / "cache" / "tracks"
    before = sorted(tracks.glob("*.json"))
    a.quit()
    wait_still(tmp_path / "sink.f32")  # the music stopped
    time.sleep(6)  # past the end of the pass, when a playing radio would make its next track
    assert pid_alive(pid)  # the daemon is still there (12 s): the radio was stopped, not the daemon
    assert sorted(tracks.glob("*.json")) == before
    (tmp_path / "back").mkdir()
    back = start_child(nvim_bin, tmp_path / "back")  # an editor comes back: the radio is off
    try:
        setup_editor(back, tmp_path)
        s = back.call("get_playback")["result"]
        assert s["radio"] is False and s["state"] == "stopped", s
        assert back.lua("return require('lofi.daemon').pid()") == pid
        back.call("shutdown", {"force": True})
    finally:
        stop_child(back)


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
    os.kill(pid, signal.SIGTERM)  # (it would play on for ever)
    assert wait_gone(pid, 10)


def test_a_track_generated_while_the_radio_plays_plays_next(bare_nvim, tmp_path):
    nvim = bare_nvim
    setup_stdio(nvim, tmp_path, player={"sink": f"capture {tmp_path / 'sink.f32'} 1", "crossfade_sec": 0.5})
    nvim.cmd("LofiRadio rainy jazz")
    playing(nvim, "s.radio and s.next ~= vim.NIL and s.next ~= nil and s.next.percent == 100")
    radio_next = nvim.lua("return require('lofi.playback').state().next.track_id")  # made, waiting its turn
    nvim.cmd("LofiGenerate sad piano 5s")  # autoplay is on (the default)
    asked = nvim.wait_done()[-1]
    nvim.wait("return T.messages()[#T.messages()] == 'lofi: sad piano plays next, after this radio track'", 10,
              "the message")
    nvim.wait(f"local s = require('lofi.playback').state() return s.track_id == '{asked['track_id']}'", 30,
              "the asked-for track playing")
    state = nvim.lua("return require('lofi.playback').state()")
    assert state["radio"] is True and state["prompt"] == "sad piano"  # the radio goes on after it
    playing(nvim, f"s.track_id == '{radio_next}'", 30)  # then the radio's own, made before it
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
