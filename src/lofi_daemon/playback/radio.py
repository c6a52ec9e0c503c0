"""Radio: endless music from a prompt (or a list of prompts), one track ahead.

    start ─► bridge plays at once ─► first AI track ready ─► crossfade on the bridge's next bar
             (library track nearest         │                 line; from then on one track
              the prompt, or procedural     │                 ahead, joined (flow) or
              rendered as it plays, or none)└─ or, with no bridge, it plays while it decodes

Bridge (``plan.bridge``): ``auto`` is the nearest library track (TF-IDF word similarity,
moods.py), else procedural music steered by the prompt (bridge.py); on the procedural backend
that bridge is the first track's own song (its seed: same key, progression and tempo), so the
hand-over on its bar line stays in time and in key. ``library`` / ``procedural`` / ``none``
force one. The state says what plays and when the AI track is due (``next.eta_sec``).

Mode (``plan.mode``): ``flow`` (the default where the backend declares ``continues_audio``)
asks each next track to continue the one playing (``continue_from``) and joins it where the
continuation begins, no crossfade; ``shuffle`` makes unrelated tracks and crossfades them in at
the end of the current pass. Until the next is ready, the current one keeps looping, so after
the first sound there is never silence, however slow the backend.

Prompts: ``prompts[]`` are walked in a gentle order (each next prompt the nearest one not yet
played); ``set_prompts`` (``radio_set_prompt``) changes the mood while it plays: the track
being made is made again with the new prompt (in flow still as a continuation).

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
from .moods import gentle_order

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
    bridge: str = "auto"  # auto | library | procedural | none
    mode: str = "shuffle"  # flow | shuffle (resolved against the backend before start)
    order: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.order:
            self.order = gentle_order(self.prompts)

    def prompt_at(self, index: int) -> str:
        return self.prompts[self.order[index % len(self.order)]]


@dataclass
class BridgeChoice:
    """What the radio plays while its first track is made, and why."""

    kind: str  # library | procedural | none
    reason: str
    track_id: str | None = None
    prompt: str | None = None
    score: float | None = None
    same_song: bool = False  # the first track's own song (procedural, its seed): no "AI" to wait for
    seed: int | None = None  # a procedural bridge's song
    bpm: float | None = None  # and its tempo

    def to_dict(self) -> dict[str, Any]:
        out = {"kind": self.kind, "reason": self.reason, "track_id": self.track_id, "prompt": self.prompt,
               "same_song": self.same_song}
        if self.score is not None:
            out["score"] = round(self.score, 3)
        if self.seed is not None and self.bpm is not None:
            out.update(seed=self.seed, bpm=round(self.bpm, 3))
        return out


class Radio:
    def __init__(self, engine: PlaybackEngine, *, submit: Submit, cancel: Callable[[str], None],
                 play: Callable[..., None], start_bridge: Callable[[RadioPlan, int | None], BridgeChoice],
                 stop_bridge: Callable[[], None], notify_error: Callable[[dict[str, Any]], None]) -> None:
        self._engine = engine
        self._submit = submit
        self._cancel = cancel
        self._play = play  # (track_id, "play" | "enqueue" | "join", **how)
        self._start_bridge = start_bridge
        self._stop_bridge = stop_bridge
        self._notify_error = notify_error
        self.plan: RadioPlan | None = None
        self._index = 0
        self.pending: str | None = None  # the job generating the next track
        self.pending_prompt: str | None = None
        self.pending_seed: int | None = None  # the seed the job generating the next track was given
        self.pending_progress: dict[str, Any] = {"percent": 0.0, "eta_sec": None}
        self.queued: str | None = None  # generated, handed to the mixer, not yet playing
        self.playing: str | None = None
        self.held: str | None = None  # a radio track made while a requested one waits to play
        self.streaming: str | None = None  # a track playing while it decodes (live.py)
        self.bridge: BridgeChoice | None = None  # while the bridge plays
        self._failures = 0
        self._retry: asyncio.TimerHandle | None = None
        self._last_publish = 0.0
        self._last_percent = -100.0
        engine.listeners.append(self._on_worker_event)

    @property
    def active(self) -> bool:
        return self.plan is not None

    @property
    def upcoming_prompt(self) -> str | None:
        if self.plan is None:
            return None
        return self.pending_prompt if self.pending is not None else self.plan.prompt_at(self._index)

    def next_backend(self, default: str) -> str | None:
        """The backend the next track will be made with while the radio runs (None: off)."""
        if self.plan is None:
            return None
        return self.plan.backend or default

    def describe(self) -> dict[str, Any]:
        nxt = None
        if self.pending is not None:
            nxt = {"track_id": self.pending, "prompt": self.pending_prompt, **self.pending_progress}
        elif self.queued is not None:
            nxt = {"track_id": self.queued, "percent": 100.0, "eta_sec": 0.0}
        if not self.active:
            return {"radio": False, "next": None}
        bridge = self.bridge.to_dict() if self.bridge is not None else None
        return {"radio": True, "next": nxt, "radio_bridge": bridge, "radio_mode": self.plan.mode if self.plan else None,
                "upcoming_prompt": self.upcoming_prompt}

    # ----- control ----------------------------------------------------------------------------
    async def start(self, plan: RadioPlan) -> dict[str, Any]:
        self.stop()
        self.plan = plan
        self._index = 0
        self._failures = 0
        try:  # the first request is this call's: a bad backend or duration is its error
            await self._submit_next(raise_errors=True)
        except LofiError:
            self.stop()
            raise
        if self.plan is not plan:
            return {"radio": False}
        choice = self._start_bridge(plan, self.pending_seed)
        self.bridge = choice if choice.kind != "none" else None
        return {"radio": True, "first_track_id": self.pending, "from_library": choice.kind == "library",
                "bridge": choice.to_dict(), "mode": plan.mode}

    def stop(self) -> None:
        pending = self.pending
        self.plan = None
        self.pending = self.queued = self.playing = self.held = self.streaming = self.pending_prompt = None
        if self.bridge is not None:
            self.bridge = None
            self._stop_bridge()
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

    async def set_prompts(self, prompts: list[str]) -> dict[str, Any]:
        """A new mood: the next track uses it (the one being made is made again)."""
        plan = self.plan
        assert plan is not None
        plan.prompts = list(prompts)
        plan.order = gentle_order(plan.prompts)
        self._index = 0
        replaced = self.pending
        if replaced is not None:
            self.pending = self.pending_prompt = None
            try:
                self._cancel(replaced)
            except LofiError:
                replaced = None  # it finished first: it plays, the one after uses the new prompt
        await self._submit_next()
        self._engine.publish()
        return {"upcoming_prompt": self.upcoming_prompt, "replaced": replaced, "next_track_id": self.pending}

    def wants_live(self, track_id: str) -> bool:
        """Play ``track_id`` while it decodes? Only when nothing else would be heard."""
        return (self.active and track_id == self.pending and self.playing is None and self.queued is None
                and self.bridge is None)

    def stream_started(self, track_id: str) -> None:
        if self.active and track_id == self.pending:
            self.streaming = self.queued = track_id

    async def _submit_next(self, raise_errors: bool = False) -> None:
        plan = self.plan
        if plan is None or self.pending is not None:
            return
        prompt = plan.prompt_at(self._index)
        request = {"prompt": prompt, "duration_sec": plan.duration_sec, **plan.params}
        if plan.backend:
            request["backend"] = plan.backend
        if plan.mode == "flow" and self.playing is not None and self.bridge is None:
            request["continue_from"] = self.playing  # the next one goes on from this one's end
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
        self.pending, self.pending_prompt = reply["track_id"], prompt
        seed = reply.get("seed")
        self.pending_seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else None
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
            bridged = self.bridge is not None
            self.stop()
            if bridged:  # the bridge was only there for the track that failed
                self._engine.send({"cmd": "stop"})
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
            if track_id == self.streaming:
                self.streaming = None  # it has been playing while it decoded: nothing to hand over
                if self.playing == track_id:  # its start could not submit the next: this job ran
                    asyncio.ensure_future(self._submit_next())
                self._engine.publish()
                return
            if self.queued is not None and self.bridge is None:
                self.held = track_id  # a requested track waits to play: this one follows it
            else:
                self.queued = track_id
                if self.bridge is not None:
                    # Unrelated pieces: crossfade, starting on the bridge's next bar line.
                    self._play(track_id, "enqueue", at_boundary=True)
                elif self.playing is None:
                    self._play(track_id, "play")
                elif self.plan is not None and self.plan.mode == "flow":
                    self._play(track_id, "join", after=self.playing)
                else:
                    self._play(track_id, "enqueue")  # crossfade at the end of the current pass
            self._engine.publish()
        elif method in ("generation_error", "generation_cancelled"):
            self.pending = self.pending_prompt = None
            if self.streaming is not None:  # what played of it stops with it (live.py aborts the stream)
                self.streaming = self.queued = None
            if self.plan is not None:
                self._fail(params.get("message", "the next track was cancelled"),
                           params.get("hint") or "Start the radio again.")

    def _on_worker_event(self, event: dict[str, Any]) -> None:
        if self.plan is None:
            return
        kind = event.get("event")
        if kind == "track" and event.get("kind") == "track_started" and event.get("track_id") == self.queued:
            self.playing, self.queued = self.queued, None
            if self.bridge is not None:
                self.bridge = None  # the AI track has taken over
                self._stop_bridge()
            if self.held is not None:
                self.queued, self.held = self.held, None
                self._play(self.queued, "enqueue")
            else:
                asyncio.ensure_future(self._submit_next())
        elif kind in ("sink_error", "track_error"):
            self.stop()  # no output: making more music would only fill the disk
