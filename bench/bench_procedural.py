"""Procedural backend: real-time factor and the cost of each phase per second of audio.

    python bench/bench_procedural.py [--durations 30 120 240]

The per-stage costs are what COST_PER_SEC in backends/procedural.py should hold (they weight
the progress percent). Also reports how far the reported percent strays from wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

from lofi_daemon.cancel import CancelToken
from lofi_daemon.backends.procedural import render
from lofi_daemon.progress import PhaseProgress


class Recorder:
    def __init__(self):
        self.start = time.perf_counter()
        self.tracker = PhaseProgress()
        self.log = []

    def plan(self, phases):  # called again as the backend refines its estimates
        self.tracker.plan(phases)

    def update(self, phase, current, total):
        self.log.append((time.perf_counter() - self.start, phase, current, total,
                         self.tracker.update(phase, current, total).percent))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--durations", type=float, nargs="+", default=[30, 120, 240])
    ap.add_argument("--prompt", default="lofi hip hop, jazzy piano, rain, vinyl crackle")
    args = ap.parse_args()
    rows = []
    for duration in args.durations:
        rec = Recorder()
        render(args.prompt, duration, 1, rec, CancelToken())
        wall = time.perf_counter() - rec.start
        bars_end = max(t for t, phase, *_ in rec.log if phase == "bars")
        rows.append({
            "duration_sec": duration,
            "wall_sec": round(wall, 2),
            "realtime_factor": round(duration / wall, 1),
            "bars_sec_per_audio_sec": round(bars_end / duration, 4),
            "master_sec_per_audio_sec": round((wall - bars_end) / duration, 4),
            "worst_progress_error_points": round(max(abs(p - 100 * t / wall) for t, _ph, _c, _tot, p in rec.log), 1),
        })
    print(json.dumps({"machine": f"{platform.machine()}, {os.cpu_count()} cores", "runs": rows}, indent=2))


if __name__ == "__main__":
    main()
