"""Two real Neovims and the CLI on one shared daemon (the default transport: a unix socket)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nvim_child import REPO, start_child, wait_gone

GRACE_SEC = 1  # daemon.idle_exit_sec in these tests


def socket_of(child) -> str:
    return child.lua("return require('lofi.daemon').socket_path()")


@pytest.fixture
def editors(nvim_bin, tmp_path, child_env):
    """Two Neovims of one user (same cache, same socket), quit by the test or at teardown."""
    children = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        child = start_child(nvim_bin, folder)
        setup_editor(child, tmp_path)
        children.append(child)
    yield children
    pids = set()
    for child in children:
        try:
            child.remember_daemon()
        except Exception:
            pass
        pids |= child.pids
        child.quit()
    for pid in pids:
        if not wait_gone(pid, 15):
            os.kill(pid, signal.SIGKILL)


def setup_editor(child, tmp_path: Path, **overrides) -> None:
    """setup() replaces the whole configuration: every test editor gets these options."""
    child.setup(**{"log_file": str(child.daemon_log), "player": {"sink": f"capture {tmp_path / 'sink.f32'} 1"},
                   "autoplay": False, "progress": {"done_ms": 60000}, "daemon": {"idle_exit_sec": GRACE_SEC},
                   **overrides})


def daemon_pid(child) -> int:
    child.wait("return require('lofi.daemon').pid() ~= nil", 30, "the daemon's pid (daemon_info)")
    return child.lua("return require('lofi.daemon').pid()")


def test_two_editors_share_one_daemon_and_see_the_same_job(editors):
    a, b = editors
    assert socket_of(a) == socket_of(b)
    assert a.call("ping")["result"]["status"] == "ok"
    assert b.call("ping")["result"]["status"] == "ok"
    assert daemon_pid(a) == daemon_pid(b)
    assert a.call("daemon_info")["result"]["clients"] == 2

    a.cmd("LofiGenerate one job for two editors 240")
    for child in (a, b):  # both statuslines show the job a started
        child.wait("return require('lofi').status().current ~= nil and require('lofi').status().current.percent > 0",
                   30, "the shared job to show progress")
    track = a.lua("return require('lofi').status().current.track_id")
    assert b.lua("return require('lofi').status().current.track_id") == track
    assert b.statusline().startswith("♪ ")

    b.lua("require('lofi').cancel(...)", track)  # cancelled from the other editor
    for child in (a, b):
        (done,) = child.wait_done(1, timeout=30)
        assert done["status"] == "cancelled" and done["track_id"] == track
        assert child.statusline() == "♪ cancelled"


def test_a_track_from_the_cli_appears_in_both_editors(editors, child_env):
    a, b = editors
    for child in (a, b):
        child.call("ping")  # both connected before the CLI runs
    env = {**os.environ, **child_env}
    run = subprocess.run([sys.executable, "-m", "lofi_daemon.cli", "generate", "from the terminal",
                          "--duration", "5", "--seed", "5"], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "via the daemon on " + socket_of(a) in run.stderr
    path = run.stdout.strip()
    for child in (a, b):
        (done,) = child.wait_done(1, timeout=30)
        assert done["status"] == "complete" and done["path"] == path
        tracks = child.call("list_tracks")["result"]["tracks"]
        assert [t["path"] for t in tracks] == [path]
        child.cmd("LofiTracks")  # the picker (nothing chosen)
        child.wait("return #T.asked > 0", 15, "the track picker")
        labels = child.lua("return T.asked[#T.asked].labels")
        assert len(labels) == 1 and labels[0].endswith("  0:05  procedural  from the terminal"), labels


def test_quitting_one_editor_keeps_the_daemon_and_the_music_and_quitting_both_ends_it(editors, tmp_path):
    a, b = editors
    a.call("ping")
    b.call("ping")
    pid = daemon_pid(a)
    a.cmd("LofiGenerate music that outlives its editor 5")
    (done,) = a.wait_done(1)
    sink = tmp_path / "music.f32"
    played = a.call("play", {"track_id": done["track_id"], "sink": f"capture {sink} 1", "loop": True})
    assert played["result"]["playing"] is True, played
    a.quit()
    b.wait("return (T.call('daemon_info').result or {}).clients == 1", 30, "a's connection to end")
    size_at_quit = sink.stat().st_size if sink.exists() else 0
    assert not wait_gone(pid, GRACE_SEC + 2)  # well past the grace: b keeps it alive
    assert sink.stat().st_size > size_at_quit  # and the music went on
    assert b.call("get_playback")["result"]["state"] == "playing"
    b.quit()
    assert wait_gone(pid, 30), "the daemon outlived its last client"


def test_a_killed_shared_daemon_is_replaced_once_and_the_user_told_once(editors):
    a, b = editors
    a.call("ping")
    b.call("ping")
    pid = daemon_pid(a)
    os.kill(pid, signal.SIGKILL)
    for child in (a, b):
        child.wait("return #T.messages(vim.log.levels.ERROR) > 0", 15, "the lost-connection message")
    for child in (a, b):
        messages = child.messages(4)
        assert len(messages) == 1, messages
        (message,) = messages
        assert "lost the connection to the shared daemon" in message and "reconnecting" in message
        child.wait(f"return require('lofi.daemon').pid() ~= nil and require('lofi.daemon').pid() ~= {pid}", 30,
                   "a new daemon")
    assert daemon_pid(a) == daemon_pid(b)  # the two editors started one daemon between them
    a.cmd("LofiGenerate after the kill 5")
    assert a.wait_done(1)[0]["status"] == "complete"
    b.wait_done(1)


def test_checkhealth_shows_the_socket_pid_uptime_and_clients(editors):
    a, b = editors
    b.call("ping")
    a.cmd("checkhealth lofi")
    report = "\n".join(a.nvim.current.buffer[:])
    assert "transport: shared daemon on " + socket_of(a) in report
    assert f"daemon pid {daemon_pid(a)}, up " in report
    assert "2 connected clients" in report


def test_the_socket_path_is_the_one_the_daemon_computes(nvim_bin, tmp_path, child_env):
    """lua/lofi/daemon.lua and transport/paths.py agree on every rule."""
    runtime = tmp_path / "rt"
    runtime.mkdir()
    cases = [
        {},  # the pytest cache dir is long: the /tmp fallback
        {"LOFI_CACHE_DIR": "/c/x"},  # short: under the cache dir
        {"XDG_RUNTIME_DIR": str(runtime)},
        {"XDG_RUNTIME_DIR": str(runtime) + "/", "LOFI_CACHE_DIR": None},  # the default cache: daemon.sock
        {"XDG_RUNTIME_DIR": "relative/dir"},
        {"LOFI_SOCKET": "/somewhere/else.sock"},
        {"LOFI_CACHE_DIR": None, "XDG_RUNTIME_DIR": None, "XDG_CACHE_HOME": "/xc"},
    ]
    child = start_child(nvim_bin, tmp_path)
    try:
        for case in cases:
            env = {**os.environ, **child_env}
            for key, value in case.items():
                if value is None:
                    env.pop(key, None)
                else:
                    env[key] = value
            for key in ("LOFI_CACHE_DIR", "XDG_RUNTIME_DIR", "LOFI_SOCKET", "XDG_CACHE_HOME"):
                child.lua("vim.env[...] = select(2, ...)", key, env.get(key))
            lua_path = child.lua("return require('lofi.daemon').socket_path()")
            py_path = subprocess.run([sys.executable, "-m", "lofi_daemon", "--print-socket"], env=env,
                                     capture_output=True, text=True, timeout=60, cwd=REPO).stdout.strip()
            assert lua_path == py_path, case
    finally:
        child.quit()


def test_a_socket_folder_others_can_write_to_is_not_used(bare_nvim, tmp_path):
    folder = tmp_path / "open"
    folder.mkdir()
    folder.chmod(0o777)
    bare_nvim.setup(log_file=str(bare_nvim.daemon_log), daemon={"socket_path": str(folder / "daemon.sock")})
    answer = bare_nvim.call("ping")
    assert answer["err"]["code"] == "DAEMON_NOT_FOUND"
    assert "can be written by others (mode 777)" in answer["err"]["message"]
    assert list(folder.iterdir()) == []  # no daemon was started there


def serving(socket_path: str) -> list[int]:
    """Live daemon processes started for ``socket_path`` (by command line)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"--socket" in argv and socket_path.encode() in argv and state != "Z":
            pids.append(int(proc.name))
    return pids


def test_editors_starting_at_the_same_instant_end_up_with_one_daemon(nvim_bin, tmp_path, child_env):
    children = []
    try:
        for i in range(3):
            folder = tmp_path / f"e{i}"
            folder.mkdir()
            child = start_child(nvim_bin, folder)
            child.setup(log_file=str(child.daemon_log), daemon={"idle_exit_sec": GRACE_SEC})
            children.append(child)
        gate_ms = (time.time() + 2.0) * 1000  # every editor sends its first request at this instant
        for child in children:
            child.lua("""
                local s, us = vim.uv.gettimeofday()
                vim.defer_fn(function() require('lofi').request('ping', nil, function() end) end,
                  math.max(0, math.floor(... - (s * 1000 + us / 1000))))
            """, gate_ms)
        pids = {daemon_pid(child) for child in children}
        assert len(pids) == 1
        path = socket_of(children[0])
        wait_until_one = time.monotonic() + 30  # the extra daemons some editors started exit by themselves
        while len(serving(path)) > 1 and time.monotonic() < wait_until_one:
            time.sleep(0.05)
        assert serving(path) == list(pids)
        assert children[0].call("daemon_info")["result"]["clients"] == 3
    finally:
        for child in children:
            child.remember_daemon()
            child.quit()
        for pid in set().union(*(c.pids for c in children)):
            if not wait_gone(pid, 15):
                os.kill(pid, signal.SIGKILL)


def test_an_editor_does_not_autoplay_a_track_another_editor_asked_for(editors, tmp_path):
    a, b = editors
    setup_editor(b, tmp_path, autoplay="play")  # a keeps autoplay off: nothing should play its track
    a.call("ping")
    b.call("ping")
    a.cmd("LofiGenerate a track only its own editor may start 5")
    a.wait_done(1)
    b.wait_done(1)  # b heard the same generation_complete
    b.call("ping")  # b's requests are answered in order: anything its autoplay sent reached the daemon
    a.call("set_volume", {"volume": 77})  # the player applies commands in order: once this shows,
    a.wait("return (T.call('get_playback').result or {}).volume == 77", 30, "the volume")  # so has a play
    state = a.call("get_playback")["result"]
    assert state["state"] != "playing", state
    b.cmd("LofiGenerate a track b asked for 5")
    b.wait_done(2)
    b.wait("return (T.call('get_playback').result or {}).state == 'playing'", 30, "b's own track to play")


def test_an_editor_that_connects_later_shows_the_running_and_queued_jobs_at_once(editors, nvim_bin, tmp_path):
    a, _ = editors
    a.cmd("LofiGenerate a long first track 240")
    a.cmd("LofiGenerate a second track waiting its turn 5")
    a.wait("return #require('lofi').status().jobs == 2", 30, "both jobs accepted")
    queued = a.lua("return require('lofi').status().jobs[2].track_id")
    folder = tmp_path / "late"
    folder.mkdir()
    late = start_child(nvim_bin, folder)
    try:
        setup_editor(late, tmp_path)
        late.call("ping")  # answered after the greeting's get_status: what it said is applied
        jobs = late.lua("return require('lofi').status().jobs")
        assert queued in [job["track_id"] for job in jobs], jobs  # a waiting job sends nothing until it starts
        assert {job["prompt"] for job in jobs} >= {"a second track waiting its turn"}
    finally:
        late.remember_daemon()
        late.quit()
