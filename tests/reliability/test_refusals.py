"""Paths the daemon will not serve, and the CLI meeting another user's daemon: one clear line
and a hint on stderr (exit code 2), never a Python traceback. And the daemon's log is private."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

OTHER_USER = "lofitest"


def env_for(cache: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "LOFI_CACHE_DIR": str(cache), "LOFI_CONFIG_DIR": str(cache / "config"),
            "HF_HUB_OFFLINE": "1", **extra}


@pytest.fixture
def short_root():
    root = Path(tempfile.mkdtemp(prefix="lofi-r-"))  # a socket path must fit in sun_path
    yield root
    shutil.rmtree(root, ignore_errors=True)


def start_socket_daemon(root: Path, socket_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lofi_daemon", "--socket", str(socket_path), "--idle-exit-sec", "0"],
                          env=env_for(root / "cache"), capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def assert_refused(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith(("lofi-daemon:", "lofi:", "hint:"))]
    assert len(lines) == 2 and lines[1].startswith("hint: "), done.stderr
    for word in words:
        assert word in lines[0], lines


def test_a_socket_dir_that_is_a_symlink_a_file_or_another_users_is_refused_in_one_line(short_root):
    real = short_root / "real"
    real.mkdir(mode=0o700)
    (short_root / "link").symlink_to(real)
    assert_refused(start_socket_daemon(short_root, short_root / "link" / "d.sock"), "unsafe socket directory")
    (short_root / "file").write_text("not a folder")
    assert_refused(start_socket_daemon(short_root, short_root / "file" / "d.sock"), "unsafe socket directory")
    foreign = short_root / "foreign"
    foreign.mkdir(mode=0o700)
    os.chown(foreign, 65534, 65534)  # nobody's (the tests run as root, as in CI)
    assert_refused(start_socket_daemon(short_root, foreign / "d.sock"), "belongs to uid 65534")
    assert list(real.iterdir()) == []  # nothing was made through the link


@pytest.mark.parametrize("plant", ["directory", "symlink", "fifo"])
def test_a_directory_symlink_or_fifo_at_the_lock_path_is_refused_in_one_line(short_root, plant):
    run = short_root / "run"
    run.mkdir(mode=0o700)
    lock = run / "d.sock.lock"
    target = short_root / "target"
    target.write_text("keep me\n")
    if plant == "directory":
        lock.mkdir()
    elif plant == "symlink":
        lock.symlink_to(target)
    else:
        os.mkfifo(lock)
    assert_refused(start_socket_daemon(short_root, run / "d.sock"), "unsafe lock file")
    assert target.read_text() == "keep me\n"


def test_an_explicit_socket_path_too_long_for_sun_path_is_refused_in_one_line(short_root):
    deep = short_root / ("x" * 60) / ("y" * 60)
    assert_refused(start_socket_daemon(short_root, deep / "d.sock"), "a unix socket path has at most")


def test_the_daemon_log_is_created_0600_and_an_older_looser_one_is_tightened(short_root):
    logs = short_root / "cache" / "logs"
    for existing in (False, True):
        if existing:
            (logs / "daemon.log").chmod(0o644)
        done = subprocess.run([sys.executable, "-m", "lofi_daemon"], env=env_for(short_root / "cache"),
                              input=b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n', capture_output=True, timeout=120,
                              preexec_fn=lambda: os.umask(0o022))
        assert b'"id":1' in done.stdout
        assert stat.S_IMODE((logs / "daemon.log").stat().st_mode) == 0o600
        assert stat.S_IMODE(logs.stat().st_mode) == 0o700
        assert "lofi-daemon starting" in (logs / "daemon.log").read_text()


def other_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(OTHER_USER)
    except KeyError:
        done = subprocess.run(["useradd", "--system", "--no-create-home", OTHER_USER], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.fail(f"cannot create the second user {OTHER_USER}: {done.stderr}")  # CI runs as root
        return pwd.getpwnam(OTHER_USER)


LISTENER = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(8)
while True:
    conn, _ = s.accept()
    conn.recv(4096)
"""


def test_the_cli_meeting_a_socket_of_another_user_refuses_in_one_line(short_root):
    # The other user's process is a plain listener run by the system Python: the venv may not be
    # readable by a second user, and what the CLI must judge is only who serves the socket.
    user = other_user()
    short_root.chmod(0o755)
    run = short_root / "run"
    run.mkdir(mode=0o700)
    os.chown(run, user.pw_uid, user.pw_gid)
    path = run / "d.sock"
    listener = subprocess.Popen(["/usr/bin/python3", "-c", LISTENER, str(path)], user=user.pw_uid,
                                group=user.pw_gid, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, cwd="/")
    try:
        deadline = time.monotonic() + 30
        while not path.exists():
            assert listener.poll() is None and time.monotonic() < deadline, listener.stderr.read().decode()
            time.sleep(0.05)
        assert path.stat().st_uid == user.pw_uid
        done = subprocess.run([sys.executable, "-m", "lofi_daemon.cli", "tracks"], capture_output=True, text=True,
                              env=env_for(short_root / "mine", LOFI_SOCKET=str(path)), timeout=120)
        assert_refused(done, f"served by uid {user.pw_uid}")
    finally:
        listener.kill()
        listener.wait(15)
