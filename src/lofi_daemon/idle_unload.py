"""When an unused model leaves memory: ``idle_unload_sec`` after it was last needed.

A model is needed while a job runs or waits, and while the radio runs on its backend (its
next track will be made with it). Every job event calls ``touch``; the timer then fires
``idle_sec`` later and unloads the model unless something needs it again. While the radio
needs it the check repeats every ``idle_sec``, so a model whose radio stopped goes at most
``idle_sec`` after its last check found the radio running.

This module is only the policy (timing and the question "still needed?"). The unload itself
is a callback the app runs in the job worker thread, behind any job.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

log = logging.getLogger(__name__)


class IdleUnloader:
    def __init__(self, idle_sec: float, *, loaded: Callable[[], str | None],
                 needed_by: Callable[[str], str | None], unload: Callable[[], Awaitable[Any]]) -> None:
        """``loaded()``: the backend holding weights (None: nothing to unload);
        ``needed_by(name)``: why it must stay (None: it may go); ``unload()``: do it."""
        self.idle_sec = float(idle_sec)
        self._loaded = loaded
        self._needed_by = needed_by
        self._unload = unload
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._last_needed = 0.0
        self._unloading: asyncio.Task[Any] | None = None

    @property
    def enabled(self) -> bool:
        return self.idle_sec > 0

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    def touch(self) -> None:
        """Something used the model (or may soon): the idle time starts again from now."""
        if not self.enabled or self._loop is None:
            return
        self._last_needed = self._loop.time()
        if self._timer is None:
            self._arm(self.idle_sec)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, delay: float) -> None:
        assert self._loop is not None
        self._timer = self._loop.call_later(max(delay, 0.0), self._check)

    def _check(self) -> None:
        assert self._loop is not None
        self._timer = None
        name = self._loaded()
        if name is None or (self._unloading is not None and not self._unloading.done()):
            return  # the next load's job events touch again
        reason = self._needed_by(name)
        if reason is not None:
            self.touch()
            return
        left = self._last_needed + self.idle_sec - self._loop.time()
        if left > 0:
            self._arm(left)
            return
        log.info("%s unused for %g s: unloading it", name, self.idle_sec)
        self._unloading = self._loop.create_task(self._run_unload(), name="lofi-idle-unload")

    async def _run_unload(self) -> None:
        try:
            await self._unload()
        except Exception:  # the daemon lives on; the model stays and the next touch tries again
            log.exception("idle unload failed")
