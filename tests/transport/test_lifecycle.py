"""One daemon per socket: started once under a race, replaced when stale, gone when idle."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

from socket_client import SharedDaemon, SocketClient, daemon_pids, wait_until

# A client process as the CLI is one: connect, or start the daemon and connect; then ask its pid.
CLIENT = textwrap.dedent("""
    import asyncio, json, sys, time
    from pathlib import Path
    from lofi_daemon.transport.client import connect_or_spawn

    async def main():
        start_at = float(sys.argv[2])
        while time.time() < start_at:  # every client leaves the gate at the same instant
            await asyncio.sleep(0.001)
        conn = await connect_or_spawn(Path(sys.argv[1]), extra_args=["--idle-exit-sec", sys.argv[3]])
        info = (await conn.request("daemon_info"))["result"]
        print(json.dumps(info), flush=True)
        sys.stdin.readline()  # stay connected until the test lets go
        await conn.close()

    asyncio.run(main())
""")


def start_clients(root, count: int, idle: str = "0.5", delay: float = 3.0) -> list[subprocess.Popen[str]]:
    gate = time.time() + delay
    env = SharedDaemon.env(root / "cache")
    return [subprocess.Popen([sys.executable, "-c", CLIENT, str(root / "run" / "daemon.sock"), str(gate), idle],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
            for _ in range(count)]


def release(clients: list[subprocess.Popen[str]]) -> None:
    for proc in clients:
        try:
            proc.communicate("bye\n", timeout=30)
        except (BrokenPipeError, subprocess.TimeoutExpired):
            proc.kill()


def test_ten_clients_started_at_the_same_instant_share_exactly_one_daemon(root):
    path = root / "run" / "daemon.sock"
    clients = start_clients(root, 10)
    try:
        infos = [json.loads(proc.stdout.readline()) for proc in clients]
        pids = {info["pid"] for info in infos}
        assert len(pids) == 1, f"clients reached {len(pids)} daemons"
        assert daemon_pids(path) == list(pids)
        assert max(info["clients"] for info in infos) == 10  # the last one to ask saw all ten connected
        with SocketClient(path) as probe:
            assert probe.call("daemon_info")["result"]["clients"] == 11
    finally:
        release(clients)
    wait_until(lambda: not daemon_pids(path), 30, "the daemon to exit after its last client")


def test_kill_9_leaves_a_stale_socket_that_the_next_client_replaces(root):
    path = root / "run" / "daemon.sock"
    first = start_clients(root, 1, idle="30", delay=0)
    old = json.loads(first[0].stdout.readline())["pid"]
    os.kill(old, signal.SIGKILL)
    release(first)
    wait_until(lambda: not daemon_pids(path), 30, "the killed daemon to be gone")
    assert path.exists()  # the socket file outlived its daemon

    second = start_clients(root, 1, delay=0)
    try:
        info = json.loads(second[0].stdout.readline())
        assert info["pid"] != old
        assert info["socket_path"] == str(path)
    finally:
        release(second)
    log = (root / "cache" / "logs" / "daemon.log").read_text()
    assert "replacing the stale socket" in log


def test_a_second_daemon_on_the_same_socket_leaves_the_first_one_serving(daemon):
    done = subprocess.run([sys.executable, "-m", "lofi_daemon", "--socket", str(daemon.path)],
                          env=SharedDaemon.env(daemon.cache), stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=60)
    assert done.returncode == 0
    assert f"already serves {daemon.path}".encode() in done.stderr
    with daemon.client() as c:
        assert c.call("daemon_info")["result"]["pid"] == daemon.proc.pid


def test_a_lock_holder_that_never_answers_makes_the_new_daemon_fail_not_succeed(root):
    """Whoever started it (an editor, the CLI) must hear a failure with the reason, not an
    exit 0 that reads as "a daemon serves" and leaves it retrying for half a minute."""
    import fcntl

    path = root / "run" / "daemon.sock"
    path.parent.mkdir(mode=0o700)
    with open(path.with_name(path.name + ".lock"), "w") as holder:  # alive, holds the lock, no socket
        fcntl.flock(holder, fcntl.LOCK_EX)
        done = subprocess.run([sys.executable, "-m", "lofi_daemon", "--socket", str(path)],
                              env=SharedDaemon.env(root / "cache"), stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=60)
    assert done.returncode != 0
    assert b"does not answer" in done.stderr


def test_the_daemon_stays_while_a_client_remains_and_exits_after_the_grace(root):
    with SharedDaemon.start(root, idle_exit_sec=1.0) as daemon:
        a, b = daemon.client(), daemon.client()
        a.close()
        wait_until(lambda: b.call("daemon_info")["result"]["clients"] == 1, 10, "a's disconnect to count")
        time.sleep(1.5)  # longer than the grace: b alone keeps the daemon
        assert daemon.proc.poll() is None
        assert b.call("ping")["result"]["status"] == "ok"
        b.close()
        daemon.proc.wait(30)
        assert daemon.proc.returncode == 0
        assert not daemon.path.exists()  # it removed its own socket
        assert "no client for 1 s; exiting" in daemon.log()


def test_idle_exit_zero_exits_as_soon_as_the_last_client_leaves(root):
    with SharedDaemon.start(root, idle_exit_sec=0) as daemon:
        daemon.client().close()
        daemon.proc.wait(30)
        assert daemon.proc.returncode == 0


def test_shutdown_ends_only_the_asking_connection_unless_forced(daemon):
    with daemon.client() as a, daemon.client() as b:
        assert a.call("shutdown")["result"] == {"status": "disconnecting"}
        wait_until(a.eof.is_set, 10, "the daemon to close a's connection")
        wait_until(lambda: b.call("daemon_info")["result"]["clients"] == 1, 10, "a's disconnect to count")
        assert b.call("shutdown", force=True)["result"] == {"status": "shutting_down"}
        daemon.proc.wait(30)
        wait_until(b.eof.is_set, 10, "b's connection to end with the daemon")


def test_replies_go_only_to_the_asker_and_notifications_to_everyone(daemon):
    with daemon.client() as a, daemon.client() as b:
        track = a.call("generate", prompt="rain on a tin roof", duration_sec=5, seed=7)["result"]["track_id"]
        assert b.wait_terminal(track)["method"] == "generation_complete"
        assert a.wait_terminal(track)["method"] == "generation_complete"
        assert [m for m in b.messages if "method" not in m] == []  # b asked nothing, b got no reply
        assert b.notifications("generation_started") == a.notifications("generation_started")


def test_an_identical_request_joins_the_job_already_running(daemon):
    with daemon.client() as a, daemon.client() as b:
        first = a.call("generate", prompt="slow rain", duration_sec=20, seed=11)["result"]
        second = b.call("generate", prompt="slow rain", duration_sec=20, seed=11)["result"]
        assert second["track_id"] == first["track_id"]
        assert second["joined"] is True
        done = b.wait_terminal(first["track_id"])
        assert done["method"] == "generation_complete"
        assert len(a.notifications("generation_started")) == 1  # one job, generated once
        tracks = a.call("list_tracks")["result"]["tracks"]
        assert [t["track_id"] for t in tracks] == [first["track_id"]]


def test_exiting_cancels_the_running_job_and_every_client_hears_it(daemon):
    with daemon.client() as a, daemon.client() as b:
        track = a.call("generate", prompt="a long one", duration_sec=240, seed=1)["result"]["track_id"]
        b.wait_for("generation_progress", track_id=track)
        a.call("shutdown", force=True)
        for client in (a, b):
            assert client.wait_terminal(track)["method"] == "generation_cancelled"
        daemon.proc.wait(30)
        assert daemon.proc.returncode == 0
    leftovers = [p.name for p in (daemon.cache / "tracks").iterdir()]
    assert leftovers == []  # no partial track, no temp file
