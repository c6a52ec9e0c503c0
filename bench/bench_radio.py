"""The radio per backend: time to first sound, and seconds of silence per hour of radio.

    PYTHONPATH=src python bench/bench_radio.py [--minutes 10] [--speed 10] [--only NAME]

Through the real daemon, its playback worker and the capture sink. Backends whose weights cannot
load here run as the paced stand-in (tests/radio/stand_in.py: procedural audio, but it takes the
time the real model takes on this CPU per 30 s track, figures from docs/benchmarks.md). The
procedural backend runs as itself.

- first sound: an empty library (so the procedural bridge), the capture at real-time pace, from
  the `radio_start` request to the worker's first sample into the sink.
- silence per hour: ``--minutes`` of radio captured at ``--speed`` x real time, with the stand-in's
  pace divided by the same factor; digital silence runs of 5 ms or more after the first sound,
  summed and scaled to an hour. Keep ``--speed 1`` (the default): the procedural bridge renders
  as it plays, at real time, and a faster sink outruns it (at 2x on two busy cores it does).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "playback"), str(ROOT / "tests" / "radio")]

from daemon_client import Daemon  # noqa: E402
from playback_helpers import RATE, playback, read_pcm, silent_runs, sound_span, start, wait_until  # noqa: E402
from radio_helpers import start_stand_in  # noqa: E402

# Seconds per 30 s track on the 2-vCPU EPYC VM (docs/benchmarks.md): MusicGen ~5 min (RTF 10),
# ACE-Step v1 27 steps ~296 s, ACE-Step 1.5 turbo ~11 min per 120 s. Stable Audio 3: not
# measured here yet; 60 s stands in (the "a backend that takes 60 s per track").
BACKENDS = {"procedural": None, "musicgen (stand-in)": 300.0, "ace_step (stand-in)": 296.0,
            "ace_step_15 (stand-in)": 165.0, "stable_audio_3 (stand-in)": 60.0}
PROMPT = "chill rain, jazzy piano, vinyl crackle"
TRACK_SEC = 30


def daemon(cache: Path, sink: str, pace: float | None) -> Daemon:
    if pace is None:
        return start(cache, sink)
    return start_stand_in(cache, sink, pace_sec=pace, caps="")  # shuffle: what real backends do today


def first_sound(pace: float | None) -> tuple[float, str]:
    """Seconds to the first sample, and the bridge the radio chose."""
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        with daemon(cache, f"capture {Path(tmp) / 'o.f32'} 1", pace) as d:
            d.call("ping")
            backend = {} if pace is None else {"backend": "paced"}
            t0 = time.monotonic()
            reply = d.call("radio_start", prompt=PROMPT, duration_sec=TRACK_SEC, **backend)["result"]
            at = wait_until(lambda: playback(d)["first_sample_at"], 30, "first sample")
            d.call("radio_stop")
            bridge = reply.get("bridge") or {}
            return at - t0, str(bridge.get("kind")) + (" (same song)" if bridge.get("same_song") else "")


def silence_per_hour(pace: float | None, minutes: float, speed: float) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        cache, cap = Path(tmp) / "cache", Path(tmp) / "radio.f32"
        with daemon(cache, f"capture {cap} {speed:g}", None if pace is None else pace / speed) as d:
            backend = {} if pace is None else {"backend": "paced"}
            d.call("radio_start", prompt=PROMPT, duration_sec=TRACK_SEC, **backend)
            frames = int(minutes * 60 * RATE)
            wait_until(lambda: cap.exists() and cap.stat().st_size >= frames * 8, minutes * 60 / speed * 3 + 60,
                       f"{minutes} minutes of radio")
            d.call("radio_stop")
            changes = len({s["track_id"] for s in d.notifications("playback_state") if s["track_id"]})
        out = read_pcm(cap)[:frames]
    begin, end = sound_span(out)
    silent = sum(length for _, length in silent_runs(out[begin:end])) / RATE
    return silent * 3600 / ((end - begin) / RATE), changes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--speed", type=float, default=1.0)
    ap.add_argument("--only", default=None)
    ap.add_argument("--repeats", type=int, default=3, help="first-sound runs per backend (median and worst shown)")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {platform.platform()}, python "
          f"{platform.python_version()}, numpy {np.__version__}")
    print(f"| backend | s per 30 s track | bridge | first sound (median / worst of {args.repeats}) | silence per hour "
          f"| tracks heard in {args.minutes:g} min (bridge included) |")
    print("|---|---|---|---|---|---|")
    for name, pace in BACKENDS.items():
        if args.only and args.only not in name:
            continue
        runs = [first_sound(pace) for _ in range(max(1, args.repeats))]
        waits = sorted(wait for wait, _ in runs)
        silence, tracks = silence_per_hour(pace, args.minutes, args.speed)
        print(f"| {name} | {'< 1 (real)' if pace is None else f'{pace:g}'} | {runs[0][1]} | "
              f"{float(np.median(waits)):.2f} s / {waits[-1]:.2f} s | {silence:.2f} s | {tracks} |", flush=True)


if __name__ == "__main__":
    main()
