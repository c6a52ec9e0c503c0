"""stdio: a full pipe or a signal never splits a reply, and a blocked client bounds our input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

from socket_client import SharedDaemon, rss_kib, wait_until


def start_stdio(root) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "lofi_daemon", "--stdio"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=open(root / "daemon.stderr", "ab"),
                            env=SharedDaemon.env(root / "cache"))


def ping_lines(count: int, start: int = 0) -> bytes:
    return b"".join(b'{"jsonrpc":"2.0","id":%d,"method":"get_backends"}\n' % i for i in range(start, start + count))


def wait_blocked_on_stdout(proc: subprocess.Popen[bytes]) -> None:
    """The daemon has more to say than the pipe holds: its writer sleeps in write()."""
    def writing() -> bool:
        for task in os.listdir(f"/proc/{proc.pid}/task"):
            try:
                if "pipe_write" in open(f"/proc/{proc.pid}/task/{task}/wchan").read():
                    return True
            except OSError:
                pass
        return False
    wait_until(writing, 60, "the daemon to block on a full stdout pipe")


def big_replies(count: int) -> bytes:
    """Requests whose error replies are ~100 KB each (they name the unknown member): no pipe write of
    that size is atomic, so a reply can be cut in the middle."""
    return b"".join(b'{"jsonrpc":"2.0","id":%d,"method":"ping","%s":1}\n' % (i, b"m" * 100_000)
                    for i in range(count))


def test_sigterm_while_a_reply_is_blocked_on_a_full_pipe_leaves_only_whole_lines(root):
    proc = start_stdio(root)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(big_replies(4) + ping_lines(50, start=100))  # far more than the 64 KB pipe holds
    proc.stdin.flush()
    wait_blocked_on_stdout(proc)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)  # let the signal land while the write is still blocked
    out = proc.stdout.read()  # now drain: the daemon finishes its writes and exits
    proc.wait(60)
    lines = out.split(b"\n")
    assert lines[-1] == b""  # the output ends on a line boundary
    replies = [json.loads(line) for line in lines[:-1]]  # every line is one whole message
    ids = [r["id"] for r in replies if "id" in r]
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    assert ids[:4] == [0, 1, 2, 3][:len(ids)]


def test_input_is_not_buffered_without_limit_while_stdout_is_blocked(root):
    proc = start_stdio(root)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(ping_lines(400))
    proc.stdin.flush()
    wait_blocked_on_stdout(proc)
    baseline = rss_kib(proc.pid)
    junk = b'{"jsonrpc":"2.0","id":%d,"method":"ping","junk":"' + b"x" * (900 << 10) + b'"}\n'
    sent = [0]

    def flood() -> None:  # 180 MB of requests (lines under the 1 MiB cap) while nobody reads
        try:
            for i in range(200):
                proc.stdin.write(junk.replace(b"%d", str(10_000 + i).encode()))
                sent[0] += 1
            proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass

    sender = threading.Thread(target=flood, daemon=True)
    sender.start()
    last, stalled_since = -1, time.monotonic()
    while sender.is_alive() and time.monotonic() - stalled_since < 3.0:  # until the daemon stops taking input
        if sent[0] != last:
            last, stalled_since = sent[0], time.monotonic()
        time.sleep(0.1)
    grown_mib = (rss_kib(proc.pid) - baseline) / 1024
    assert sender.is_alive(), "the daemon took all 180 MB while its output was blocked"
    assert grown_mib < 64, f"RSS grew by {grown_mib:.0f} MiB while stdout was blocked"

    reader = threading.Thread(target=lambda: setattr(proc, "all_out", proc.stdout.read()), daemon=True)
    reader.start()  # unblock: every request is answered in the end
    sender.join(120)
    proc.stdin.close()
    reader.join(120)
    proc.wait(60)
    ids = {json.loads(line).get("id") for line in proc.all_out.splitlines()}
    assert set(range(400)) | {10_000 + i for i in range(200)} <= ids
