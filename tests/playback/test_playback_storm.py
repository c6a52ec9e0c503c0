"""A command storm through the real daemon, its real playback worker and the capture sink.

One client pipelines thousands of pause / resume / seek / set_volume / next / set_loop / play
(now and queued) requests without waiting for any answer, as a clumsy script would. Every one
is answered, and what reached the sink never exceeds full scale nor jumps by more than the
music's own step (scaled by at most one equal-power crossfade at full volume, plus what a
20 ms ramp moves in one sample).
"""

from __future__ import annotations

import math
import random
import time

import numpy as np

from playback_helpers import RATE, generate, playback, read_pcm, read_track, start, wait_until

RAMP = int(0.02 * RATE)
RAMP_SLOPE = 6 * (math.pi / 2) / RAMP  # as in test_mixer_bounds: a few fades over one ramp at once
MAX_GAIN = 1.5  # 150 % volume


def music_bounds(*tracks: np.ndarray) -> tuple[float, float]:
    """(own step, peak) of the tracks, the wrap of a loop included."""
    step = max(float(np.abs(np.diff(np.concatenate([t, t[:1]]), axis=0)).max()) for t in tracks)
    return step, max(float(np.abs(t).max()) for t in tracks)


def test_thousands_of_pipelined_commands_never_exceed_full_scale_or_click(cache_dir, tmp_path):
    cap = tmp_path / "out.f32"
    rng = random.Random(20)
    with start(cache_dir, f"capture {cap} 1") as d:
        a = generate(d, "rainy jazz", 5, seed=1)
        b = generate(d, "upbeat sunny", 5, seed=2)
        ids = [a["track_id"], b["track_id"]]
        d.call("play", track_id=ids[0])
        wait_until(lambda: cap.exists() and cap.stat().st_size > RATE * 8 // 4, 30, "sound")
        sent = []
        for k in range(3000):
            kind = k % 9
            if kind in (0, 1, 2):  # seeks dominate: ten in a row already clipped at 2.6x
                sent.append(d.send("seek", {"position_sec": round(rng.uniform(0, 4.9), 3)}))
            elif kind == 3:
                sent.append(d.send("play", {"track_id": ids[k % 2]}))
            elif kind == 4:
                sent.append(d.send("play", {"track_id": ids[(k + 1) % 2], "queue": True}))
            elif kind == 5:
                sent.append(d.send("next"))
            elif kind == 6:
                sent.append(d.send("pause" if k % 2 else "resume"))
            elif kind == 7:
                sent.append(d.send("set_volume", {"volume": rng.randint(0, 150)}))
            else:
                sent.append(d.send("set_loop", {"on": bool(k % 4)}))
        replies = [d.wait_reply(i, timeout=120) for i in sent]
        d.call("set_volume", volume=150)
        d.call("resume")
        d.call("play", track_id=ids[0])
        size = cap.stat().st_size
        wait_until(lambda: cap.stat().st_size >= size + RATE * 8, 30, "a second more after the storm")
        d.call("stop")
        wait_until(lambda: playback(d)["state"] == "stopped", 10, "stopped")
        time.sleep(0.2)
        assert d.call("ping")["result"]["status"] == "ok"
    assert all("result" in r or "error" in r for r in replies)
    assert sum("result" in r for r in replies) > 1000  # most of them did something
    out = read_pcm(cap)
    step, peak = music_bounds(read_track(a["path"]), read_track(b["path"]))
    assert np.all(np.isfinite(out))
    assert float(np.abs(out).max()) <= 1.0
    allowed = MAX_GAIN * (math.sqrt(2) * step + peak * RAMP_SLOPE)
    steps = np.abs(np.diff(out, axis=0)).max(axis=1)
    assert steps.max() <= allowed, f"a step of {steps.max():.4f} at frame {steps.argmax()} (allowed {allowed:.4f})"


def test_the_limiter_acting_is_logged_once_per_ten_seconds_at_most(cache_dir, tmp_path):
    from lofi_daemon import audio

    loud = tmp_path / "loud.wav"  # 0.9 peak at 150 %: 1.35 before the limiter
    t = np.arange(2 * RATE) / RATE
    mono = 0.9 * np.sin(2 * np.pi * 110 * t)
    loud.write_bytes(audio.encode(np.stack([mono, mono]).astype(np.float32), RATE, "wav"))
    cap = tmp_path / "out.f32"
    began = time.monotonic()
    with start(cache_dir, f"capture {cap} 1") as d:
        d.call("set_volume", volume=150)
        d.call("play", path=str(loud))
        wait_until(lambda: cap.exists() and cap.stat().st_size >= 2 * RATE * 8, 30, "two seconds played")
        d.call("stop")
    elapsed = time.monotonic() - began
    out = read_pcm(cap)
    assert float(np.abs(out).max()) <= 1.0 and float(np.abs(out).max()) > 0.95  # limited, not muted
    log = (cache_dir / "logs" / "daemon.log").read_text()
    lines = [line for line in log.splitlines() if "safety limiter" in line]
    assert 1 <= len(lines) <= 1 + elapsed / 10.0, lines
    assert "volume 150%" in lines[0]
