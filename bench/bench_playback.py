"""Playback benchmarks: mixer CPU, play -> first sample at the sink, underruns under load.

    python bench/bench_playback.py [--heavy-sec 240] [--sink "mpv --ao=null"]

1. mixer CPU: the mixer alone renders 120 s of audio (a loop and a crossfade in it).
2. worker CPU: the whole playback worker process while it feeds the real-time sink for 20 s.
3. play -> first sample: from sending ``play`` to the worker's first write into a new sink
   (cold: the first play, which starts the worker; warm: after the sink was closed).
4. underruns: late blocks (the sink had played everything it had been given) counted by the
   worker while ``bench/heavy_daemon.py`` runs a CPU-heavy torch workload in the same daemon.

Prints a JSON summary; docs/benchmarks.md records the results per machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from daemon_client import Daemon  # noqa: E402

from lofi_daemon.playback.mixer import BLOCK, RATE, Mixer, Voice  # noqa: E402


def mixer_cpu(seconds: float = 120.0) -> float:
    rng = np.random.default_rng(0)
    a = (rng.standard_normal((30 * RATE, 2)) * 0.2).astype(np.float32)
    b = (rng.standard_normal((30 * RATE, 2)) * 0.2).astype(np.float32)
    mixer = Mixer()
    mixer.play(Voice(a, "a", loopable=False))
    blocks = int(seconds * RATE / BLOCK)
    started = time.process_time()
    for i in range(blocks):
        if i == blocks // 3:
            mixer.enqueue(Voice(b, "b", loopable=True))
        mixer.render(BLOCK)
    return (time.process_time() - started) / seconds * 100  # % of one core


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def playback(d: Daemon) -> dict:
    return d.call("get_playback")["result"]


def wait(check, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.01)
    raise TimeoutError


def first_sample_ms(d: Daemon, track_id: str) -> float:
    sent = time.monotonic()
    d.call("play", track_id=track_id)
    at = wait(lambda: (t := playback(d)["first_sample_at"]) and t > sent and t)
    return (at - sent) * 1000


def start(cache: str, sink: str, heavy_sec: float) -> Daemon:
    env = {**os.environ, "LOFI_CACHE_DIR": cache, "LOFI_CONFIG_DIR": cache + "/cfg", "LOFI_PLAYER_SINK": sink,
           "LOFI_PLAYBACK": "local", "LOFI_BENCH_HEAVY_SEC": str(heavy_sec)}
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "heavy_daemon.py")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    return Daemon(proc)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--heavy-sec", type=float, default=240.0)
    parser.add_argument("--sink", default="mpv --ao=null")
    args = parser.parse_args()
    out: dict = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                 "load_before": os.getloadavg()[0], "sink": args.sink}
    out["mixer_cpu_percent_of_core"] = round(mixer_cpu(), 3)
    with tempfile.TemporaryDirectory() as cache, start(cache, args.sink, args.heavy_sec) as d:
        reply = d.call("generate", prompt="rainy jazz", duration_sec=30, seed=1)["result"]
        d.wait_terminal(reply["track_id"], timeout=120)
        out["first_sample_cold_ms"] = round(first_sample_ms(d, reply["track_id"]), 1)
        pid = playback(d)["worker_pid"]
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        time.sleep(20)
        out["worker_cpu_percent_of_core"] = round((cpu_seconds(pid) - cpu0) / (time.monotonic() - t0) * 100, 2)
        warm = []
        for _ in range(3):
            d.call("stop")
            time.sleep(3)  # the sink closes after 2 s idle: the next play opens a new one
            warm.append(round(first_sample_ms(d, reply["track_id"]), 1))
        out["first_sample_warm_ms"] = warm
        # Underruns while the big generation runs beside the music.
        before = playback(d)["underruns"]
        heavy = d.call("generate", prompt="HEAVY rainy jazz", duration_sec=30, seed=2)["result"]
        t0 = time.monotonic()
        done = d.wait_terminal(heavy["track_id"], timeout=args.heavy_sec + 300)
        state = playback(d)
        out["heavy_generation_sec"] = round(time.monotonic() - t0, 1)
        out["heavy_outcome"] = done["method"]
        out["underruns_during_generation"] = state["underruns"] - before
        out["still_playing"] = state["state"] == "playing"
        out["load_during"] = os.getloadavg()[0]
        d.call("stop")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
