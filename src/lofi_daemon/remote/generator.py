"""The work of a job whose backend runs on the remote generator.

The job stays in the local queue (capacity, order, progress, cancel and its one terminal
notification are the queue's); only its work differs, and it runs in the local worker thread:

1. send ``generate`` to the remote (same prompt, seed, format and backend parameters);
2. relay the remote's progress under the local track id (the remote's percent is the first
   90 % of ours, the transfer the rest); a local cancel sends ``cancel`` to the remote;
3. when the remote completes, fetch the file with ``read_track`` (``fetch.py``) and commit it
   to the local library, or end with the remote's own error (its code and hint).

The remote going away ends the job with REMOTE_UNAVAILABLE (the remote's own daemon cancels its
job when its stdin closes); the next request starts the remote again. ``backend_status`` and
download notifications from the remote pass through to the local clients, marked ``remote``.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import queue
import threading
import time
from typing import Any, Callable

from ..cancel import CancelToken
from ..errors import ErrorCode, JobCancelled, LofiError, RemoteUnavailable
from ..tracks import Track, TrackLibrary
from .connection import RemoteConnection, describe
from .fetch import fetch_track

log = logging.getLogger(__name__)

PASSED_THROUGH = ("backend_status", "download_progress", "download_complete", "download_error")
TERMINAL = ("generation_complete", "generation_error", "generation_cancelled")
REMOTE_SHARE = 90.0  # of the local percent: the remote's generation; the transfer is the rest
CALL_TIMEOUT_SEC = 300.0  # one request (a chunk, a generate) on a link that went silent without closing
CANCEL_WAIT_SEC = 5.0  # for the remote to confirm a cancel, so its queue is free for the next job
BRIDGE_SEC = 60.0  # after the remote failed, radio tracks are made here this long before it is tried again
EARLY_KEPT = 32  # remote track ids whose notifications arrived before their job was watching

Notify = Callable[[str, dict[str, Any]], None]
LOST = "lost"


class RemoteGenerator:
    def __init__(self, argv: list[str], backends: list[str] | None, library: TrackLibrary, notify: Notify, *,
                 env: dict[str, str] | None = None, start_timeout_sec: float | None = None) -> None:
        self.argv = list(argv)
        self._routed = set(backends) if backends is not None else None
        self._library = library
        self._notify = notify
        extra = {} if start_timeout_sec is None else {"start_timeout_sec": start_timeout_sec}
        self.connection = RemoteConnection(argv, self._on_notification, on_lost=self._on_lost, env=env, **extra)
        self._lock = threading.Lock()  # the loop feeds watchers while the worker adds and removes them
        self._watchers: dict[str, queue.Queue[tuple[str, dict[str, Any]]]] = {}
        self._early: collections.OrderedDict[str, list[tuple[str, dict[str, Any]]]] = collections.OrderedDict()
        self._loop: asyncio.AbstractEventLoop | None = None

    def handles(self, backend: str) -> bool:
        """Whether jobs for ``backend`` go to the remote (default: every backend but procedural)."""
        return backend in self._routed if self._routed is not None else backend != "procedural"

    def away(self, now: float | None = None) -> bool:
        """Whether the remote failed recently (the radio then makes its tracks here)."""
        failed_at = self.connection.failed_at
        now = time.monotonic() if now is None else now
        return not self.connection.connected and failed_at is not None and now - failed_at < BRIDGE_SEC

    def routed(self) -> list[str] | str:
        return sorted(self._routed) if self._routed is not None else "all but procedural"

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    async def close(self) -> None:
        await self.connection.close()

    # ----- what the remote says (event loop) ------------------------------------------------
    def _on_notification(self, method: str, params: dict[str, Any]) -> None:
        track_id = params.get("track_id")
        if method.startswith("generation_") and isinstance(track_id, str):
            with self._lock:
                watcher = self._watchers.get(track_id)
                if watcher is not None:
                    watcher.put((method, params))
                else:  # the reply to our generate may still be on its way to the worker
                    early = self._early.setdefault(track_id, [])
                    early.append((method, params))
                    del early[:-64]
                    while len(self._early) > EARLY_KEPT:
                        self._early.popitem(last=False)
        elif method in PASSED_THROUGH:
            self._notify(method, {**params, "remote": True})

    def _on_lost(self, why: str) -> None:
        with self._lock:
            for watcher in self._watchers.values():
                watcher.put((LOST, {"message": why}))

    # ----- the job (worker thread) ----------------------------------------------------------
    def run(self, job: Any, progress: Any) -> Track:
        progress.plan([("remote", REMOTE_SHARE), ("fetch", 100.0 - REMOTE_SHARE)])
        job.cancel.check()
        params = {"prompt": job.request.prompt, "duration_sec": job.request.duration_sec, "backend": job.backend,
                  "seed": job.request.seed, "format": job.fmt, **job.request.params}
        reply = self._call(self.connection.request("generate", params))
        remote_id = reply.get("track_id") if isinstance(reply, dict) else None
        if not isinstance(remote_id, str) or not remote_id:
            raise RemoteUnavailable("the remote answered generate without a track id",
                                    hint="Update lofi-daemon on the remote, then generate again.")
        watcher: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        with self._lock:
            for early in self._early.pop(remote_id, []):
                watcher.put(early)
            self._watchers[remote_id] = watcher
            if not self.connection.connected:  # lost between the reply and now
                watcher.put((LOST, {"message": self.connection.last_error or "the remote generator went away"}))
        try:
            done = self._follow(job, remote_id, watcher, progress)
            log.info("job %s: remote track %s done (%s s there); fetching it", job.track_id, remote_id,
                     done.get("generation_time_sec"))
            origin = {"generator": describe(self.argv), "track_id": remote_id,
                      "version": (self.connection.info or {}).get("version")}
            try:
                return fetch_track(lambda method, p: self._call(self.connection.request(method, p)), remote_id,
                                   self._library, job.track_id, cache_key=job.cache_key, origin=origin,
                                   cancel=job.cancel, on_bytes=lambda n, total: progress.update("fetch", n, max(total, 1)))
            except RemoteUnavailable as exc:
                if "nothing was kept" in exc.message or "discarded" in exc.message:
                    raise
                raise RemoteUnavailable(
                    f"{exc.message}; the transfer of the finished track stopped and nothing was kept here",
                    hint="Generate again: the next request starts the remote generator again.",
                    **exc.facts) from None
        finally:
            with self._lock:
                self._watchers.pop(remote_id, None)

    def _follow(self, job: Any, remote_id: str, watcher: queue.Queue, progress: Any) -> dict[str, Any]:
        """Relay the remote job's progress until it ends; its completion payload."""
        while True:
            if job.cancel.cancelled:
                self._cancel_remote(remote_id, watcher, job.cancel)
            try:
                method, params = watcher.get(timeout=0.05)
            except queue.Empty:
                continue
            if method == "generation_progress":
                percent = params.get("percent")
                if isinstance(percent, (int, float)) and 0 <= percent <= 100:
                    progress.update("remote", int(percent * 10), 1000)
            elif method == "generation_complete":
                return params
            elif method == "generation_error":
                raise _remote_job_error(params)
            elif method == "generation_cancelled":  # cancelled there (another client of the remote)
                raise JobCancelled(_int(params.get("at_step")), _int(params.get("total_steps")))
            elif method == LOST:
                raise RemoteUnavailable(
                    f"{params['message']}; the job is lost there and nothing was kept here",
                    hint="Generate again: the next request starts the remote generator again. "
                         "Check the generator command in a terminal if it keeps failing.",
                    generator=describe(self.argv))

    def _cancel_remote(self, remote_id: str, watcher: queue.Queue, cancel: CancelToken) -> None:
        """Cancel the remote job, wait briefly for it to confirm, and end this one cancelled."""
        try:
            self._call(self.connection.request("cancel", {"track_id": remote_id}), timeout=CANCEL_WAIT_SEC)
        except LofiError as exc:  # already done there, or the remote is gone: ours is cancelled anyway
            log.info("remote cancel of %s: %s", remote_id, exc.message)
        at_step = total_steps = 0
        try:
            while True:
                method, params = watcher.get(timeout=CANCEL_WAIT_SEC)
                if method == "generation_cancelled":
                    at_step, total_steps = _int(params.get("at_step")), _int(params.get("total_steps"))
                if method in TERMINAL or method == LOST:
                    break
        except queue.Empty:
            log.warning("the remote did not confirm the cancel of %s within %g s", remote_id, CANCEL_WAIT_SEC)
        raise JobCancelled(at_step, total_steps)

    def _call(self, coroutine: Any, timeout: float = CALL_TIMEOUT_SEC) -> Any:
        """Run a connection coroutine on the event loop from the worker thread; its result."""
        assert self._loop is not None, "RemoteGenerator.start() was not called"
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise RemoteUnavailable(f"the remote generator did not answer within {timeout:g} s",
                                    hint="Check the network to the remote; the next request reconnects.",
                                    generator=describe(self.argv)) from None

    # ----- what the local daemon reports about the remote (event loop) ----------------------
    async def backends(self) -> dict[str, dict[str, Any]]:
        """The remote's ``get_backends`` entries by name."""
        result = await self.connection.request("get_backends")
        entries = result.get("backends") if isinstance(result, dict) else None
        return {e["name"]: e for e in entries or [] if isinstance(e, dict) and isinstance(e.get("name"), str)}

    async def describe(self) -> dict[str, Any]:
        """For ``:checkhealth``: reachable, version, the backends there and the GPU (connects)."""
        out: dict[str, Any] = {"command": self.argv, "backends_sent": self.routed(), "reachable": False}
        try:
            info = await self.connection.request("daemon_info")
            backends = await self.backends()
        except LofiError as exc:
            out["error"] = exc.message
            out["hint"] = exc.hint
            return out
        if not isinstance(info, dict):
            info = {}
        out.update(reachable=True, version=info.get("version"), protocol=info.get("protocol"),
                   gpu=info.get("gpu"), pid=info.get("pid"),
                   installed=sorted(n for n, e in backends.items() if e.get("status") in ("installed", "loading", "ready")))
        return out


def _remote_job_error(params: dict[str, Any]) -> LofiError:
    try:
        code = ErrorCode[str(params.get("code"))]
    except KeyError:
        code = ErrorCode.MODEL_INFERENCE_FAILED
    facts = {k: v for k, v in params.items() if k not in ("track_id", "code", "message", "hint", "remote")}
    hint = params.get("hint") if isinstance(params.get("hint"), str) else None
    return LofiError(f"remote: {params.get('message') or code.name}", code=code, hint=hint, remote=True, **facts)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
