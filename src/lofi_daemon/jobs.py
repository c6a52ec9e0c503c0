"""Jobs: a bounded FIFO queue, one worker thread, prompt cancellation, progress.

Jobs know order, capacity and cancellation, not models: the heavy work is a ``runner``
function (built by the app) that runs in the single worker thread. Every job ends in
exactly one terminal notification: ``generation_complete``, ``generation_error`` or
``generation_cancelled``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import traceback
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .cancel import CancelToken
from .backends.base import GenerationRequest
from .errors import AlreadyComplete, ErrorCode, JobCancelled, LofiError, QueueFull, TrackNotFound, clip, resource_error
from .progress import PhaseProgress

log = logging.getLogger(__name__)

MAX_WAITING = 5
PROGRESS_MIN_INTERVAL_SEC = 0.25  # emit at least this often while percent creeps
PROGRESS_MIN_STEP = 1.0  # ...or whenever percent moved by a point

Notify = Callable[[str, dict[str, Any]], None]


@dataclass
class Job:
    track_id: str
    backend: str
    request: GenerationRequest
    fmt: str
    cache_key: str
    state: str = "queued"  # queued | generating | complete | error | cancelled
    cancel: CancelToken = field(default_factory=CancelToken)
    progress: PhaseProgress | None = None
    last_snapshot: dict[str, Any] | None = None

    def describe(self) -> dict[str, Any]:
        out = {
            "track_id": self.track_id,
            "backend": self.backend,
            "prompt": self.request.prompt,
            "duration_sec": self.request.duration_sec,
            "seed": self.request.seed,
            "state": self.state,
        }
        if self.last_snapshot:
            out["progress"] = self.last_snapshot
        return out


Runner = Callable[[Job, "JobProgress"], dict[str, Any]]


class JobProgress:
    """The ``Progress`` a backend sees: weights phases, throttles, hops to the event loop."""

    def __init__(self, job: Job, tracker: PhaseProgress, emit: Callable[[dict[str, Any]], None],
                 clock: Callable[[], float]) -> None:
        self._job = job
        self._tracker = tracker
        self._emit = emit
        self._clock = clock
        self._last_percent = -100.0
        self._last_phase = ""
        self._last_time = -1e9

    def plan(self, phases: Sequence[tuple[str, float]]) -> None:
        self._tracker.plan(phases)

    def update(self, phase: str, current: int, total: int) -> None:
        snap = self._tracker.update(phase, current, total)
        payload = {
            "track_id": self._job.track_id,
            "percent": snap.percent,
            "phase": snap.phase,
            "current_step": snap.current_step,
            "total_steps": snap.total_steps,
            "eta_sec": snap.eta_sec,
        }
        self._job.last_snapshot = payload
        now = self._clock()
        if (phase != self._last_phase or snap.percent - self._last_percent >= PROGRESS_MIN_STEP
                or now - self._last_time >= PROGRESS_MIN_INTERVAL_SEC or current >= total):
            self._last_phase, self._last_percent, self._last_time = phase, snap.percent, now
            self._emit(payload)


class JobQueue:
    def __init__(self, *, runner: Runner, notify: Notify, executor: Executor,
                 clock: Callable[[], float] = time.monotonic, max_waiting: int = MAX_WAITING) -> None:
        self._runner = runner
        self._notify = notify
        self._executor = executor
        self._clock = clock
        self.max_waiting = max_waiting
        self._waiting: collections.deque[Job] = collections.deque()
        self._current: Job | None = None
        self._finished: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._wakeup = asyncio.Event()
        self._closed = False
        self._worker: asyncio.Task[None] | None = None
        # Learned seconds of wall time per second of audio, per backend, for wait estimates.
        self._rate: dict[str, float] = {}

    # ----- public API (called on the event loop) -------------------------------------------
    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._work(), name="lofi-worker")

    def submit(self, job: Job) -> int:
        """Queue ``job``; returns its position (0 = starts now). Raises QUEUE_FULL."""
        if self._closed:
            raise LofiError("the daemon is shutting down", code=ErrorCode.INTERNAL_ERROR,
                            hint="Restart the daemon.")
        # A job the worker has not picked up yet is about to run: it does not count as waiting.
        waiting = len(self._waiting) - (1 if self._current is None and self._waiting else 0)
        if waiting >= self.max_waiting:
            raise QueueFull(
                f"the queue is full ({waiting} tracks waiting)",
                hint=f"Wait about {self.estimated_wait_sec():.0f} s or cancel a queued track.",
                queue_length=waiting,
                estimated_wait_sec=round(self.estimated_wait_sec(), 1),
            )
        self._waiting.append(job)
        self._wakeup.set()
        return len(self._waiting) - (0 if self._current else 1)

    def cancel(self, track_id: str) -> dict[str, bool]:
        current = self._current
        if current is not None and current.track_id == track_id:
            if not current.cancel.cancel():  # past the commit point: it will complete
                raise AlreadyComplete(f"track {track_id} is already being saved; it can no longer be cancelled",
                                      track_id=track_id, state="saving")
            return {"cancelled": True, "was_generating": True}
        for job in self._waiting:
            if job.track_id == track_id:
                self._waiting.remove(job)
                job.state = "cancelled"
                self._remember(job)
                self._notify("generation_cancelled", {"track_id": track_id, "at_step": 0, "total_steps": 0})
                return {"cancelled": True, "was_generating": False}
        if track_id in self._finished:
            raise AlreadyComplete(f"track {track_id} has already {self._finished[track_id]}",
                                  track_id=track_id, state=self._finished[track_id])
        raise TrackNotFound(f"no job with id {track_id!r}", track_id=track_id)

    @property
    def idle(self) -> bool:
        """No job running and none waiting: what the idle unloader and ``unload`` ask."""
        return self._current is None and not self._waiting

    def find_by_cache_key(self, key: str) -> tuple[Job, int] | None:
        """The queued or running job making exactly this track, and its position (0 = running)."""
        current = self._current
        if current is not None and current.cache_key == key and not current.cancel.cancelled:
            return current, 0
        for index, job in enumerate(self._waiting):
            if job.cache_key == key:
                return job, index + (1 if current is not None else 0)
        return None

    def status(self) -> dict[str, Any]:
        return {
            "current": self._current.describe() if self._current else None,
            "queue": [job.describe() for job in self._waiting],
            "queue_length": len(self._waiting),
            "max_waiting": self.max_waiting,
        }

    def estimated_wait_sec(self) -> float:
        total = 0.0
        if self._current is not None:
            progress = self._current.progress
            eta = progress.eta_sec() if progress else None
            total += eta if eta is not None else self._estimate(self._current)
        return total + sum(self._estimate(job) for job in self._waiting)

    async def shutdown(self, timeout: float = 10.0) -> None:
        """Refuse new jobs, drop the waiting ones, cancel the running one and wait for it."""
        self._closed = True
        while self._waiting:
            self.cancel(self._waiting[0].track_id)
        if self._current is not None:
            self._current.cancel.cancel()
        self._wakeup.set()
        if self._worker is not None:
            try:
                await asyncio.wait_for(self._worker, timeout)
            except asyncio.TimeoutError:
                log.warning("jobs: worker did not stop within %.0f s", timeout)

    # ----- worker ----------------------------------------------------------------------------
    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._waiting:
                if self._closed:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            job = self._waiting.popleft()
            self._current = job
            job.state = "generating"
            job.progress = PhaseProgress(self._clock)
            progress = JobProgress(
                job, job.progress,
                emit=lambda payload: loop.call_soon_threadsafe(self._notify, "generation_progress", payload),
                clock=self._clock,
            )
            self._tell("generation_started", {"track_id": job.track_id, "backend": job.backend,
                                                "seed": job.request.seed})
            started = self._clock()
            try:
                result = await loop.run_in_executor(self._executor, self._runner, job, progress)
            except JobCancelled as exc:
                job.state = "cancelled"
                self._tell("generation_cancelled", {"track_id": job.track_id, "at_step": exc.at_step,
                                                      "total_steps": exc.total_steps})
            except LofiError as exc:
                job.state = "error"
                log.warning("job %s failed: %s", job.track_id, exc.message)
                self._tell("generation_error", {**exc.facts, "track_id": job.track_id, "code": exc.code.name,
                                                  "message": exc.message, "hint": exc.hint})
            except Exception as exc:  # a crash inside a job must never kill the daemon
                job.state = "error"
                exhausted = resource_error(exc, "generation")
                if exhausted is not None:  # a limit reached, reported as what it is
                    log.warning("job %s failed: %s", job.track_id, exhausted.message)
                    self._tell("generation_error", {**exhausted.facts, "track_id": job.track_id,
                                                      "code": exhausted.code.name, "message": exhausted.message,
                                                      "hint": exhausted.hint})
                    continue
                log.error("job %s crashed:\n%s", job.track_id, traceback.format_exc())
                self._tell("generation_error", {
                    "track_id": job.track_id, "code": ErrorCode.MODEL_INFERENCE_FAILED.name,
                    "message": clip(f"generation failed: {type(exc).__name__}: {exc}"),
                    "hint": "Retry with another seed; if it keeps failing, see the daemon log.",
                })
            else:
                job.state = "complete"
                self._learn(job, self._clock() - started)
                self._tell("generation_complete", result)
            finally:
                self._remember(job, took=self._clock() - started)
                self._current = None

    def _tell(self, method: str, params: dict[str, Any]) -> None:
        """Notify without letting a client-side failure stop the worker."""
        try:
            self._notify(method, params)
        except Exception as exc:
            if resource_error(exc, method) is not None:  # out of descriptors: one line, not a traceback each
                log.warning("could not send %s: %s", method, exc)
            else:
                log.exception("could not send %s", method)

    def _remember(self, job: Job, took: float | None = None) -> None:
        # One line per job in the log: what was asked, and how it ended.
        log.info("job %s %s: prompt=%r backend=%s seed=%s duration=%gs%s", job.track_id, job.state,
                 job.request.prompt, job.backend, job.request.seed, job.request.duration_sec,
                 f" took={took:.1f}s" if took is not None else " (never started)")
        self._finished[job.track_id] = job.state
        while len(self._finished) > 1000:
            self._finished.popitem(last=False)

    def _estimate(self, job: Job) -> float:
        return self._rate.get(job.backend, 1.0) * job.request.duration_sec

    def _learn(self, job: Job, seconds: float) -> None:
        rate = seconds / max(job.request.duration_sec, 1e-3)
        old = self._rate.get(job.backend)
        self._rate[job.backend] = rate if old is None else 0.7 * old + 0.3 * rate
