"""Cooperative cancellation: the one flag a job, its backend and a model download share.

It sits below ``models/`` and ``backends/`` so both can stand on it: the job sets it, the code
doing the work checks it at every step (or chunk) and stops with ``JobCancelled``.
"""

from __future__ import annotations

import threading

from .errors import JobCancelled


class CancelToken:
    """A cooperative cancel flag, checked by the backend at every step."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._committed = False

    def cancel(self) -> bool:
        """Ask the job to stop; False when it is too late (its result is being committed)."""
        with self._lock:
            if self._committed:
                return False
            self._event.set()
            return True

    def commit(self) -> None:
        """The point of no return: raise ``JobCancelled`` if cancelled, else refuse later cancels."""
        with self._lock:
            self.check()
            self._committed = True

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self, at_step: int = 0, total_steps: int = 0) -> None:
        """Raise ``JobCancelled`` if the job was cancelled."""
        if self._event.is_set():
            raise JobCancelled(at_step, total_steps)
