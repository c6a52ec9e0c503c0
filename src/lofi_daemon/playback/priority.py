"""Generation yields the CPU to playback when both want it.

On Linux a nice value belongs to a thread, and threads inherit it from the thread that
creates them. The job worker thread calls ``yield_to_playback()`` before its first job, so
it and the torch / OpenMP threads it starts run a few nice steps below the playback worker
process: on a busy 2-core machine the mixer is served first. On an idle machine this costs
generation nothing (nice only matters under contention). Raising one's own nice value
needs no privilege; elsewhere (macOS threads, Windows) it is a no-op.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger(__name__)

GENERATION_NICE_STEPS = 5
_done: set[int] = set()


def yield_to_playback(steps: int = GENERATION_NICE_STEPS) -> None:
    tid = threading.get_native_id()
    if tid in _done or not hasattr(os, "setpriority") or not os.uname().sysname == "Linux":
        return
    _done.add(tid)
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + steps))
    except OSError as exc:
        log.debug("cannot lower the job thread's priority: %s", exc)
