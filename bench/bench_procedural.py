"""Procedural backend: CPU seconds per second of audio (the budget is 0.1), real-time factor,
the cost of each phase, and how far the reported percent strays from wall time.

    python bench/bench_procedural.py [--durations 30 120 240] [--prompt ...]

The mix's cost in full-length FFTs is what MIX_COST in backends/procedural/backend.py holds
(it weights the progress percent).
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
        cpu_started = time.process_time()
        render(args.prompt, duration, 1, rec, CancelToken())
        cpu = time.process_time() - cpu_started
        wall = time.perf_counter() - rec.start
        bars_end = max(t for t, phase, *_ in rec.log if phase == "bars")
        rows.append({
            "duration_sec": duration,
            "wall_sec": round(wall, 2),
            "cpu_sec": round(cpu, 2),
            "cpu_sec_per_audio_sec": round(cpu / duration, 4),
            "realtime_factor": round(duration / wall, 1),
            "bars_sec_per_audio_sec": round(bars_end / duration, 4),
            "mix_sec_per_audio_sec": round((wall - bars_end) / duration, 4),
            "worst_progress_error_points": round(max(abs(p - 100 * t / wall) for t, _ph, _c, _tot, p in rec.log), 1),
        })
    print(json.dumps({"machine": f"{platform.machine()}, {os.cpu_count()} cores", "runs": rows}, indent=2))


if __name__ == "__main__":
    main()
