"""The daemon's limits on a real socket: no notification drops a reading client, a line
cap enforced while reading, memory that comes back after a burst, fairness under a
command storm, a backlog for a burst of editors, and descriptor exhaustion met calmly."""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from socket_client import SharedDaemon, SocketClient, rss_kib, wait_until

HERE = Path(__file__).parent


def start_shout_server(root: Path, outbox_bytes: int) -> tuple[subprocess.Popen[bytes], Path]:
    path = root / "run" / "shout.sock"
    proc = subprocess.Popen([sys.executable, str(HERE / "shout_server.py"), str(path), str(outbox_bytes)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(root / "shout.stderr", "ab"))
    wait_until(lambda: path.exists() or proc.poll() is not None, 30, "the shout server to listen")
    assert proc.poll() is None, (root / "shout.stderr").read_text()
    return proc, path


def test_a_notification_bigger_than_the_outbox_is_shortened_and_drops_only_the_client_that_never_reads(root):
    proc, path = start_shout_server(root, outbox_bytes=256 * 1024)
    try:
        stuck = SocketClient(path, read=False)
        with SocketClient(path) as a, SocketClient(path) as b:
            wait_until(lambda: a.call("shout", chars=0)["result"]["clients"] == 3, 10, "three clients")
            reply = a.call("shout", chars=8_000_000)  # 16 MB of foreign text in one notification
            assert reply["result"]["clients"] == 3
            for client in (a, b):
                note = client._wait(lambda m: m.get("method") == "shout" and m["params"]["message"], 30, "the shout")
                message = note["params"]["message"]
                assert len(message) < 10_000 and "7996000 more characters cut" in message
            before = len(b.notifications("shout"))
            for _ in range(40):  # 40 x 100 KB (under the size cap): far more than the stuck client's outbox
                a.call("shout", chars=50_000)
            wait_until(lambda: len(b.notifications("shout")) == before + 40, 30, "every shout at b")
            assert not b.eof.is_set()
            assert a.call("shout", chars=1)["result"]["clients"] == 2  # only the stuck one was dropped
        stuck.close()
    finally:
        proc.terminate()
        proc.wait(10)


def raw_exchange(sock: socket.socket, data: bytes, replies: int) -> list[dict]:
    sock.sendall(data)
    buf = b""
    while buf.count(b"\n") < replies:
        chunk = sock.recv(1 << 16)
        if not chunk:
            break
        buf += chunk
    return [json.loads(line) for line in buf.splitlines()]


def test_a_line_over_the_cap_is_answered_with_one_parse_error_and_the_connection_reads_on(root):
    with SharedDaemon.start(root, "--max-line-bytes", "4096") as daemon:
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(os.fsencode(daemon.path))
        long_line = b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{},"x":"' + b"x" * 5000 + b'"}\n'
        ping = b'{"jsonrpc":"2.0","id":2,"method":"ping"}\n'
        replies = raw_exchange(sock, long_line + ping, 2)
        assert replies[0]["error"]["code"] == -32700 and "4096" in replies[0]["error"]["message"]
        assert replies[0]["id"] is None and replies[1]["id"] == 2 and "result" in replies[1]
        assert raw_exchange(sock, b'{"jsonrpc":"2.0","id":3,"method":"daemon_info"}\n', 1)[0]["result"][
            "max_line_bytes"] == 4096
        sock.close()


def test_stdio_caps_lines_by_the_environment_too(root):
    env = {**SharedDaemon.env(root / "cache"), "LOFI_MAX_LINE_BYTES": "2048"}
    proc = subprocess.run([sys.executable, "-m", "lofi_daemon"], env=env, capture_output=True, timeout=120,
                          input=b'{"id":1,"x":"' + b"y" * 3000 + b'"}\n{"jsonrpc":"2.0","id":2,"method":"ping"}\n')
    replies = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r.get("id") for r in replies] == [None, 2]
    assert replies[0]["error"]["code"] == -32700 and "2048" in replies[0]["error"]["message"]


def test_memory_comes_back_after_rounds_of_huge_lines_from_many_clients(root):
    with SharedDaemon.start(root) as daemon:
        with daemon.client() as probe:
            probe.call("ping")
            baseline = rss_kib(daemon.proc.pid)
            chunk = b"z" * (1 << 20)
            for _ in range(3):  # 8 clients x 48 MiB, as in the report (RSS grew 393 MB a round)
                socks = [socket.socket(socket.AF_UNIX) for _ in range(8)]
                for s in socks:
                    s.connect(os.fsencode(daemon.path))
                senders = [threading.Thread(target=lambda s=s: [s.sendall(chunk) for _ in range(48)]) for s in socks]
                for t in senders:
                    t.start()
                for t in senders:
                    t.join(120)
                for s in socks:  # the line ends, and its sender goes away without reading the answer
                    s.sendall(b"\n")
                    s.close()
                assert probe.call("ping", timeout=60)["result"]
                grown_mib = (rss_kib(daemon.proc.pid) - baseline) / 1024
                assert grown_mib < 100, f"RSS {grown_mib:.0f} MiB above the baseline after a round"


def test_another_clients_ping_is_answered_before_a_storm_of_3000_pipelined_commands_is(root):
    with SharedDaemon.start(root) as daemon:
        with daemon.client() as storm, daemon.client() as other:
            other.call("ping")
            order: list[str] = []
            storm_lines = b"".join(b'{"jsonrpc":"2.0","id":%d,"method":"daemon_info"}\n' % (1000 + i)
                                   for i in range(3000))
            storm.sock.sendall(storm_lines)
            other.call("ping", timeout=60)
            order.append(f"ping answered after {sum(1 for m in storm.messages if 'result' in m)} storm replies")
            wait_until(lambda: sum(1 for m in storm.messages if "result" in m) == 3000, 120, "the storm's replies")
            answered_before = int(order[0].split()[3])
            assert answered_before < 2000, order[0]


def test_500_editors_connecting_at_once_all_get_in(root):
    with SharedDaemon.start(root) as daemon:
        socks, refused = [], 0
        for _ in range(500):
            s = socket.socket(socket.AF_UNIX)
            s.setblocking(False)
            try:
                s.connect(os.fsencode(daemon.path))
                socks.append(s)
            except BlockingIOError:  # EAGAIN: the listen backlog is full
                refused += 1
                s.close()
        assert refused == 0
        for s in socks:
            s.close()
        with daemon.client() as c:
            assert c.call("ping")["result"]


def _low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))


def test_out_of_descriptors_the_daemon_backs_off_counts_logs_little_and_recovers(root):
    cache = root / "cache"
    path = root / "run" / "daemon.sock"
    proc = subprocess.Popen([sys.executable, "-m", "lofi_daemon", "--socket", str(path), "--idle-exit-sec", "30"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(root / "daemon.stderr", "ab"), env=SharedDaemon.env(cache),
                            preexec_fn=_low_fd_limit)
    daemon = SharedDaemon(proc, path, cache)
    with daemon:
        wait_until(daemon.listening, 60, "the daemon to listen")
        with daemon.client() as first:
            first.call("ping")
            held = []
            for _ in range(120):  # more than the 64 descriptors the daemon may have
                s = socket.socket(socket.AF_UNIX)
                s.connect(os.fsencode(path))
                held.append(s)
            wait_until(lambda: first.call("daemon_info")["result"].get("accept_refusals", 0) > 0, 30,
                       "the daemon to count a refused accept")
            time.sleep(3)  # out of descriptors for a while: the log must not flood
            # A job started now needs files it cannot open: the limit is named, not "another seed".
            job = first.call("generate", prompt="rain on a tin roof", duration_sec=5, seed=7, backend="procedural")
            end = first.wait_terminal(job["result"]["track_id"])
            assert end["method"] == "generation_error" and end["code"] == "RESOURCE_EXHAUSTED", end
            assert "ulimit -n = 64" in end["hint"] and end["os_error"] == "EMFILE", end
            for s in held:
                s.close()
            info = first.call("daemon_info")["result"]
            assert info["accept_refusals"] > 0
        log = daemon.log()
        assert "Traceback" not in log
        assert 1 <= log.count("cannot accept connections") <= 10
        with daemon.client() as late:  # descriptors are back: a new editor gets in
            assert late.call("ping", timeout=30)["result"]
