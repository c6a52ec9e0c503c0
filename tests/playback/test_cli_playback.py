"""`lofi play` and `lofi radio` in a terminal: real CLI process, real daemon, real sinks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np

from playback_helpers import RATE, read_pcm, read_track, silent_runs, sound_span, wait_until


def lofi(cache_dir, *args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "LOFI_CACHE_DIR": str(cache_dir), "LOFI_CONFIG_DIR": str(cache_dir / "cfg"),
           "LOFI_PLAYBACK": "local"}
    return subprocess.Popen([sys.executable, "-m", "lofi_daemon.cli", "--in-process", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_lofi_play_without_loop_plays_the_file_once_and_exits(cache_dir, tmp_path):
    made = lofi(cache_dir, "generate", "rainy jazz", "--duration", "5", "--seed", "3")
    path = made.communicate(timeout=120)[0].strip()
    assert made.returncode == 0, path
    cap = tmp_path / "out.f32"
    play = lofi(cache_dir, "play", path, "--no-loop", "--sink", f"capture {cap} 4")
    out, err = play.communicate(timeout=60)
    assert play.returncode == 0, err
    assert "♪ rainy jazz" in err
    pcm, source = read_pcm(cap), read_track(path)
    begin, end = sound_span(pcm)
    ramp = int(0.02 * RATE)
    n = source.shape[0]
    np.testing.assert_array_equal(pcm[ramp:n - ramp], source[ramp:n - ramp])  # the file, sample for sample
    # ...up to its last 20 ms: a track made to loop has no faded end, so played once it fades
    # out there instead of stopping on a click.
    fade = np.cos(0.5 * np.pi * (np.arange(ramp) + 0.5) / ramp)[:, None]
    np.testing.assert_allclose(pcm[n - ramp:n], source[n - ramp:] * fade, atol=1e-6)
    assert silent_runs(pcm[begin:end]) == []


def test_lofi_radio_plays_until_ctrl_c_then_stops_the_music(cache_dir, tmp_path):
    cap = tmp_path / "radio.f32"
    radio = lofi(cache_dir, "radio", "sunny", "--duration", "5", "--sink", f"capture {cap} 1",
                 start_new_session=True)
    wait_until(lambda: cap.exists() and cap.stat().st_size > RATE * 8, 120, "radio audio")
    os.killpg(radio.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    out, err = radio.communicate(timeout=30)
    assert radio.returncode == 130, err
    size = cap.stat().st_size
    time.sleep(0.5)
    assert cap.stat().st_size == size  # no playback worker left behind
    assert "Traceback" not in err


def test_lofi_play_with_a_failing_output_says_why_and_exits_3(cache_dir):
    made = lofi(cache_dir, "generate", "rain", "--duration", "5")
    made.communicate(timeout=120)
    play = lofi(cache_dir, "play", "last", "--sink", "sh -c 'echo \"no such card\" >&2; exit 1'")
    _, err = play.communicate(timeout=60)
    assert play.returncode == 3
    assert "no such card" in err and "hint: " in err and "player.sink" in err
