"""The socket lets no one in: private modes, no symlink followed, other users refused."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys

import pytest

from socket_client import SharedDaemon, wait_until

NOBODY = 65534


def test_the_socket_is_0600_in_a_0700_directory(daemon):
    assert stat.S_ISSOCK(os.lstat(daemon.path).st_mode)
    assert stat.S_IMODE(os.lstat(daemon.path).st_mode) == 0o600
    assert stat.S_IMODE(os.lstat(daemon.path.parent).st_mode) == 0o700
    lock = daemon.path.with_name(daemon.path.name + ".lock")
    assert stat.S_IMODE(os.lstat(lock).st_mode) == 0o600
    assert int(lock.read_text()) == daemon.proc.pid


def test_an_existing_socket_directory_open_to_others_is_made_private(root):
    (root / "run").mkdir(mode=0o755)
    os.chmod(root / "run", 0o777)
    with SharedDaemon.start(root):
        assert stat.S_IMODE(os.lstat(root / "run").st_mode) == 0o700


def test_a_symlink_planted_at_the_socket_path_is_not_followed(root):
    canary = root / "canary.txt"
    canary.write_text("keep me")
    (root / "run").mkdir(mode=0o700)
    (root / "run" / "daemon.sock").symlink_to(canary)
    with SharedDaemon.start(root) as daemon, daemon.client() as c:
        assert c.call("ping")["result"]["status"] == "ok"
        assert stat.S_ISSOCK(os.lstat(daemon.path).st_mode)  # our socket replaced the link
        assert canary.read_text() == "keep me"
        assert "removing a non-socket at the socket path" in daemon.log()


def test_a_socket_directory_that_is_a_symlink_is_refused(root):
    elsewhere = root / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    (root / "run").symlink_to(elsewhere)
    env = SharedDaemon.env(root / "cache")
    done = subprocess.run([sys.executable, "-m", "lofi_daemon", "--socket", str(root / "run" / "daemon.sock")],
                          env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert done.returncode != 0
    assert b"is not a plain directory" in done.stderr
    assert list(elsewhere.iterdir()) == []  # nothing was created through the link


def _connect_as(uid: int, path: str) -> tuple[str, bytes]:
    """Connect from a forked child running as ``uid``: ("refused-by-kernel"|"connected", what it read)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to the other user, then try the daemon
        os.close(read_end)
        try:
            os.setgid(uid)
            os.setuid(uid)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(30)
            try:
                sock.connect(path)
            except PermissionError:
                os.write(write_end, b"refused-by-kernel\n")
                os._exit(0)
            data = b""
            while chunk := sock.recv(65536):  # the daemon speaks first: the refusal, then EOF
                data += chunk
            try:  # and a request after that is never answered
                sock.sendall(b'{"jsonrpc":"2.0","id":1,"method":"list_tracks"}\n')
                data += sock.recv(65536)
            except OSError:
                pass
            os.write(write_end, b"connected\n" + data)
        except BaseException as exc:  # report, never run the parent's test code in the child
            os.write(write_end, f"error {exc!r}\n".encode())
        os._exit(0)
    os.close(write_end)
    out = b""
    while chunk := os.read(read_end, 65536):
        out += chunk
    os.close(read_end)
    os.waitpid(pid, 0)
    head, _, rest = out.partition(b"\n")
    return head.decode(), rest


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to run a client as another user (CI runs as root)")
def test_another_user_cannot_reach_the_socket_through_its_modes(daemon):
    os.chmod(daemon.path.parent.parent, 0o755)  # only the socket's own folder keeps others out
    outcome, _ = _connect_as(NOBODY, str(daemon.path))
    assert outcome == "refused-by-kernel"


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to run a client as another user (CI runs as root)")
def test_another_user_is_refused_by_uid_even_when_the_modes_let_it_in(daemon):
    # As if the user had made the folder and socket world-accessible: the uid check still holds.
    for folder in (daemon.path.parent.parent, daemon.path.parent):
        os.chmod(folder, 0o755)
    os.chmod(daemon.path, 0o666)
    with daemon.client() as mine:
        outcome, data = _connect_as(NOBODY, str(daemon.path))
        assert outcome == "connected"
        assert b"connection refused: this daemon serves another user" in data
        assert b"tracks" not in data  # the request was never answered
        wait_until(lambda: f"refused a connection from uid {NOBODY}" in daemon.log(), 10, "the refusal in the log")
        assert mine.call("ping")["result"]["status"] == "ok"  # the daemon keeps serving
        assert mine.call("daemon_info")["result"]["clients"] == 1
