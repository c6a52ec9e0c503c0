"""Finding a process's children by command line (for tests that signal a daemon's helpers)."""

from __future__ import annotations

from pathlib import Path


def child_pids(pid: int, name_part: str) -> list[int]:
    """Live children of ``pid`` whose command line contains ``name_part``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid and name_part in cmdline:
            found.append(int(entry.name))
    return found
