"""Shared-daemon (unix socket) benchmarks: second-client connect-to-first-reply, fan-out, idle CPU.

    python bench/bench_transport.py [--connects 200] [--notes 1000] [--clients 10] [--idle-sec 10]

Starts a real ``lofi-daemon --socket`` in a temporary cache, keeps one client connected (the
"first editor"), then measures:

* connect_ms: a second client's connect + ``ping`` until its reply is read (target < 20 ms);
* fan-out: ``clients`` readers connected; ``notes`` cached ``generate`` requests each broadcast
  one ``generation_complete`` (~0.5 KB) to every client; time until every client has them all;
* idle CPU: utime+stime of the daemon over ``idle_sec`` with one idle client connected.

Prints a JSON summary; docs/benchmarks.md records the results per machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def wait_listening(path: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"daemon exited with {proc.returncode}")
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(str(path))
            return
        except OSError:
            time.sleep(0.02)
        finally:
            s.close()
    raise SystemExit("daemon never listened")


def read_line(sock: socket.socket, buf: bytearray) -> bytes:
    while b"\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError
        buf += chunk
    line, _, rest = bytes(buf).partition(b"\n")
    buf[:] = rest
    return line


def connect_to_reply(path: Path, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(path))
        s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n')
        read_line(s, bytearray())
        times.append(time.perf_counter() - start)
        s.close()
    return times


def fan_out(path: Path, clients: int, notes: int) -> dict[str, float]:
    prompt = "fan out to every editor, " * 8
    driver = socket.socket(socket.AF_UNIX)
    driver.connect(str(path))
    request = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "generate",
                          "params": {"prompt": prompt.strip(), "duration_sec": 5, "seed": 77}}).encode() + b"\n"
    driver.sendall(request)  # make the track once; every later identical request is a cache hit
    buf = bytearray()
    while b"generation_complete" not in read_line(driver, buf):
        pass
    readers = [socket.socket(socket.AF_UNIX) for _ in range(clients)]
    counts = [0] * clients
    done = threading.Barrier(clients + 1)

    def read(i: int) -> None:
        sock, buf, seen = readers[i], bytearray(), 0
        while seen < notes:
            if b"generation_complete" in read_line(sock, buf):
                seen += 1
        counts[i] = seen
        done.wait()

    for r in readers:
        r.connect(str(path))
    threads = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    time.sleep(0.5)  # every reader is registered before the first notification
    start = time.perf_counter()
    # Batches of 50 requests per line; the daemon answers them in order.
    batch = b"[" + b",".join([request.strip()] * 50) + b"]\n"
    sender_buf = bytearray()
    for _ in range(notes // 50):
        driver.sendall(batch)
        read_line(driver, sender_buf)  # wait for the batch reply (keeps the driver's own inbox small)
    done.wait()
    elapsed = time.perf_counter() - start
    for r in readers:
        r.close()
    driver.close()
    return {"notifications": notes, "clients": clients, "seconds": round(elapsed, 3),
            "deliveries_per_sec": round(notes * clients / elapsed),
            "notes_per_sec_per_client": round(notes / elapsed)}


NVIM_PROBE = r"""
vim.opt.rtp:prepend(REPO)
require("lofi").setup({ daemon = { socket_path = SOCKET } })
local t0 = vim.uv.hrtime()
local took
require("lofi").request("ping", nil, function() took = (vim.uv.hrtime() - t0) / 1e6 end)
vim.wait(10000, function() return took ~= nil end, 1)
io.stdout:write(string.format("%.3f\n", took or -1))
"""


def nvim_connect_to_reply(nvim: str, path: Path, runs: int) -> list[float]:
    """A fresh headless Neovim's first request to the running daemon (connect + ping), in ms."""
    repo = Path(__file__).resolve().parents[1]
    script = Path(tempfile.mkdtemp()) / "probe.lua"
    script.write_text(f"local REPO, SOCKET = {json.dumps(str(repo))}, {json.dumps(str(path))}\n" + NVIM_PROBE)
    out = []
    for _ in range(runs):
        done = subprocess.run([nvim, "--headless", "--clean", "-l", str(script)], capture_output=True, text=True,
                              timeout=60)
        out.append(float((done.stdout or done.stderr).strip().splitlines()[-1]))
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--connects", type=int, default=200)
    ap.add_argument("--notes", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--idle-sec", type=float, default=10.0)
    ap.add_argument("--nvim", help="also time a second Neovim's first request (path to nvim)")
    ap.add_argument("--nvim-runs", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="lofi-b-") as root:
        path = Path(root) / "run" / "daemon.sock"
        env = {**os.environ, "LOFI_CACHE_DIR": root + "/cache", "LOFI_CONFIG_DIR": root + "/cfg",
               "LOFI_LOG_LEVEL": "WARNING"}
        proc = subprocess.Popen([sys.executable, "-m", "lofi_daemon", "--socket", str(path)], env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_listening(path, proc)
            first = socket.socket(socket.AF_UNIX)
            first.connect(str(path))  # the first editor stays connected throughout
            connect_to_reply(path, 10)  # warm-up
            times = sorted(connect_to_reply(path, args.connects))
            nvim_ms = sorted(nvim_connect_to_reply(args.nvim, path, args.nvim_runs)) if args.nvim else None
            fan = fan_out(path, args.clients, args.notes)
            time.sleep(1.0)
            before = cpu_seconds(proc.pid)
            time.sleep(args.idle_sec)
            idle = (cpu_seconds(proc.pid) - before) / args.idle_sec
            first.close()
        finally:
            proc.terminate()
            proc.wait(30)
    print(json.dumps({
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}",
        "python": platform.python_version(),
        "second_client_connect_to_reply_ms": {"median": round(statistics.median(times) * 1e3, 2),
                                              "p95": round(times[int(len(times) * 0.95) - 1] * 1e3, 2),
                                              "max": round(times[-1] * 1e3, 2), "runs": len(times)},
        "nvim_second_editor_first_request_ms": nvim_ms and {"median": round(statistics.median(nvim_ms), 2),
                                                            "max": round(nvim_ms[-1], 2), "runs": len(nvim_ms)},
        "fan_out": fan,
        "idle_cpu_percent": round(idle * 100, 3),
    }, indent=2))


if __name__ == "__main__":
    main()
