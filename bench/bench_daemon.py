"""Daemon transport benchmarks: spawn-to-first-ping, ping round trip, message throughput.

    python bench/bench_daemon.py [--runs 10] [--pings 2000]

Prints a JSON summary; docs/benchmarks.md records the results per machine.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time


def spawn_to_ping(runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "LOFI_CACHE_DIR": cache, "LOFI_CONFIG_DIR": cache + "/cfg"}
            start = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-m", "lofi_daemon"], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
            proc.stdin.write(b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n')
            proc.stdin.flush()
            proc.stdout.readline()
            times.append(time.perf_counter() - start)
            proc.stdin.close()
            proc.wait()
    return times


def ping_round_trips(count: int) -> tuple[list[float], float]:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "LOFI_CACHE_DIR": cache, "LOFI_CONFIG_DIR": cache + "/cfg"}
        proc = subprocess.Popen([sys.executable, "-m", "lofi_daemon"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        rtts = []
        for i in range(count):  # one at a time: latency
            start = time.perf_counter()
            proc.stdin.write(b'{"jsonrpc":"2.0","id":%d,"method":"ping"}\n' % i)
            proc.stdin.flush()
            proc.stdout.readline()
            rtts.append(time.perf_counter() - start)
        start = time.perf_counter()  # pipelined: throughput of request/reply
        proc.stdin.write(b"".join(b'{"jsonrpc":"2.0","id":%d,"method":"ping"}\n' % i for i in range(count)))
        proc.stdin.flush()
        for _ in range(count):
            proc.stdout.readline()
        pipelined = count / (time.perf_counter() - start)
        proc.stdin.close()
        proc.wait()
    return rtts, pipelined


def notification_throughput(count: int) -> float:
    """Messages per second the server's writer pushes through a real pipe to a reader."""
    from lofi_daemon.rpc.dispatch import Dispatcher
    from lofi_daemon.transport.stdio import StdioServer

    read_fd, write_fd = os.pipe()
    writer = os.fdopen(write_fd, "wb", buffering=0)
    server = StdioServer(Dispatcher(), io.BytesIO(), writer)
    received = 0

    def drain() -> None:
        nonlocal received
        with os.fdopen(read_fd, "rb") as r:
            for _ in r:
                received += 1

    t = threading.Thread(target=drain)
    t.start()
    payload = {"track_id": "t0123456789ab", "percent": 42.0, "phase": "diffusion", "current_step": 11,
               "total_steps": 27, "eta_sec": 8.4}
    start = time.perf_counter()
    for _ in range(count):
        server.notify("generation_progress", payload)
    server.flush(timeout=60)  # the writer thread has written everything
    writer.close()
    t.join()
    return received / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--pings", type=int, default=2000)
    args = ap.parse_args()
    spawn = spawn_to_ping(args.runs)
    rtts, pipelined = ping_round_trips(args.pings)
    rtts.sort()
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "spawn_to_first_ping_ms": {"median": round(statistics.median(spawn) * 1e3, 1),
                                   "max": round(max(spawn) * 1e3, 1)},
        "ping_rtt_us": {"p50": round(rtts[len(rtts) // 2] * 1e6), "p95": round(rtts[int(len(rtts) * 0.95)] * 1e6)},
        "pipelined_pings_per_sec": round(pipelined),
        "notifications_per_sec": round(notification_throughput(50_000)),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(asyncio.sleep(0))
    main()
