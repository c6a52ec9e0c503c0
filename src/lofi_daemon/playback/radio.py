"""Radio: endless music from a prompt (or a list of prompts), one track ahead.

The first track comes from the library when one was made from the same prompt (music at
once), otherwise it is generated. While a track plays, the next one (the same prompt with a
new seed, or the next prompt of the list) is generated through the normal job queue; when
it is ready it is queued in the mixer, which crossfades it in at the end of the current pass.
Until then the current track keeps looping seamlessly, so after the first sound there is
never silence, however slow the backend.

Ordering against user requests: the radio has at most one job in the queue at a time, and
submits it only when the track before it has started playing. A user's ``generate`` is
therefore never behind more than one radio job, and the radio takes at most one of the five
waiting places; when the queue is full the radio waits and tries again (the music loops on).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from ..errors import LofiError, QueueFull
from .engine import PlaybackEngine

log = logging.getLogger(__name__)

RETRY_SEC = 5.0  # after QUEUE_FULL or a failed job
MAX_FAILURES = 3  # in a row: the radio stops and says why
STATE_MIN_INTERVAL_SEC = 1.0

Submit = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass
class RadioPlan:
    prompts: list[str]
    backend: str | None = None
    duration_sec: float = 30.0
    params: dict[str, Any] = field(default_factory=dict)


class Radio:
    def __init__(self, engine: PlaybackEngine, *, submit: Submit, cancel: Callable[[str], None],
                 play: Callable[[str, str], None], first_from_library: Callable[[RadioPlan], str | None],
                 notify_error: Callable[[dict[str, Any]], None]) -> None:
        self._engine = engine
        self._submit = submit
        self._cancel = cancel
        self._play = play  # (track_id, "play" | "enqueue")
        self._first_from_library = first_from_library
        self._notify_error = notify_error
        self.plan: RadioPlan | None = None
        self._index = 0
        self.pending: str | None = None  # the job generating the next track
        self.pending_progress: dict[str, Any] = {"percent": 0.0, "eta_sec": None}
        self.queued: str | None = None  # generated, handed to the mixer, not yet playing
        self.playing: str | None = None
        self.held: str | None = None  # a radio track made while a requested one waits to play
        self._failures = 0
        self._retry: asyncio.TimerHandle | None = None
        self._last_publish = 0.0
        self._last_percent = -100.0
        engine.listeners.append(self._on_worker_event)

    @property
    def active(self) -> bool:
        return self.plan is not None

    def next_backend(self, default: str) -> str | None:
        """The backend the next track will be made with while the radio runs (None: off)."""
        if self.plan is None:
            return None
        return self.plan.backend or default

    def describe(self) -> dict[str, Any]:
        nxt = None
        if self.pending is not None:
            nxt = {"track_id": self.pending, **self.pending_progress}
        elif self.queued is not None:
            nxt = {"track_id": self.queued, "percent": 100.0, "eta_sec": 0.0}
        return {"radio": self.active, "next": nxt if self.active else None}

    # ----- control ----------------------------------------------------------------------------
    async def start(self, plan: RadioPlan) -> dict[str, Any]:
        self.stop()
        self.plan = plan
        self._index = 0
        self._failures = 0
        first = self._first_from_library(plan)
        if first is not None:
            self._index = 1
            self.queued = first
            self._play(first, "play")
            # The next one is made once this one has started (see _on_worker_event).
        else:
            try:  # the first request is this call's: a bad backend or duration is its error
                await self._submit_next(raise_errors=True)
            except LofiError:
                self.stop()
                raise
        return {"radio": True, "first_track_id": first or self.pending, "from_library": first is not None}

    def stop(self) -> None:
        pending = self.pending
        self.plan = None
        self.pending = self.queued = self.playing = self.held = None
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if pending is not None:
            try:
                self._cancel(pending)
            except LofiError:
                pass  # it finished in the meantime

    def put_next(self, track_id: str) -> None:
        """A track the user asked for plays next (crossfaded in at the end of this pass); a
        radio track already waiting goes after it."""
        if self.queued is not None and self.queued != track_id:
            self.held = self.queued
        self.queued = track_id
        self._play(track_id, "enqueue")
        self._engine.publish()

    def skip(self) -> bool:
        """Go to the next track as soon as it is ready; True when it was ready already."""
        ready = self.queued is not None
        self._engine.send({"cmd": "next"})
        return ready

    async def _submit_next(self, raise_errors: bool = False) -> None:
        plan = self.plan
        if plan is None or self.pending is not None:
            return
        prompt = plan.prompts[self._index % len(plan.prompts)]
        request = {"prompt": prompt, "duration_sec": plan.duration_sec, **plan.params}
        if plan.backend:
            request["backend"] = plan.backend
        try:
            reply = await self._submit(request)
        except LofiError as exc:
            if raise_errors:
                raise
            if isinstance(exc, QueueFull):
                self._schedule_retry()
            else:
                self._fail(exc.message, exc.hint)
            return
        if self.plan is not plan:  # stopped while submitting
            try:
                self._cancel(reply["track_id"])
            except LofiError:
                pass
            return
        self._index += 1
        self.pending = reply["track_id"]
        self.pending_progress = {"percent": 0.0, "eta_sec": None}
        self._engine.publish()

    def _schedule_retry(self) -> None:
        loop = asyncio.get_running_loop()
        if self._retry is not None:
            self._retry.cancel()
        self._retry = loop.call_later(RETRY_SEC, lambda: asyncio.ensure_future(self._submit_next()))

    def _fail(self, message: str, hint: str) -> None:
        self._failures += 1
        if self._failures >= MAX_FAILURES or self.playing is None and self.queued is None:
            self._notify_error({"code": "PLAYBACK_FAILED", "message": f"radio stopped: {message}", "hint": hint,
                                "sink": None, "stderr": ""})
            self.stop()
            self._engine.publish()
            return
        log.warning("radio: next track failed (%s); trying again", message)
        self._schedule_retry()

    # ----- what happens (on the loop) --------------------------------------------------------
    def on_job_event(self, method: str, params: dict[str, Any]) -> None:
        if self.pending is None or params.get("track_id") != self.pending:
            return
        if method == "generation_progress":
            self.pending_progress = {"percent": params.get("percent", 0.0), "eta_sec": params.get("eta_sec")}
            now = time.monotonic()
            if (params.get("percent", 0.0) - self._last_percent >= 1.0
                    and now - self._last_publish >= STATE_MIN_INTERVAL_SEC):
                self._last_publish, self._last_percent = now, params.get("percent", 0.0)
                self._engine.publish()
        elif method == "generation_complete":
            track_id, self.pending = self.pending, None
            self._failures = 0
            self._last_percent = -100.0
            if self.queued is not None:  # a requested track waits: this one follows it
                self.held = track_id
            else:
                self.queued = track_id
                # The first track plays at once; later ones wait for the end of the current pass.
                self._play(track_id, "play" if self.playing is None else "enqueue")
            self._engine.publish()
        elif method in ("generation_error", "generation_cancelled"):
            self.pending = None
            if self.plan is not None:
                self._fail(params.get("message", "the next track was cancelled"),
                           params.get("hint") or "Start the radio again.")

    def _on_worker_event(self, event: dict[str, Any]) -> None:
        if self.plan is None:
            return
        kind = event.get("event")
        if kind == "track" and event.get("kind") == "track_started" and event.get("track_id") == self.queued:
            self.playing, self.queued = self.queued, None
            if self.held is not None:
                self.queued, self.held = self.held, None
                self._play(self.queued, "enqueue")
            else:
                asyncio.ensure_future(self._submit_next())
        elif kind in ("sink_error", "track_error"):
            self.stop()  # no output: making more music would only fill the disk
