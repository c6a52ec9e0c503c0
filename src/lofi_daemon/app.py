"""Composition root: builds settings, library, registry, jobs and the RPC methods.

Nothing here is global; ``App`` gets its parts injected so tests can build the same graph.
The method handlers are thin: decode (already done by rpc.params), validate against the
backend, hand to jobs, answer.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from . import PROTOCOL_VERSION, __version__, audio
from .backends.base import GenerationRequest
from .backends.registry import BackendRegistry
from .device import empty_cache
from .encoder import encode_isolated
from .cancel import CancelToken
from .errors import (AlreadyComplete, BackendNotInstalled, DownloadInProgress, ErrorCode, InvalidDuration,
                     JobCancelled, LofiError, ModelInferenceFailed, TrackNotFound)
from .jobs import Job, JobProgress, JobQueue
from .models.store import ModelStore
from .playback.methods import PlaybackService
from .playback.priority import yield_to_playback
from .rpc import params as P
from .rpc.caller import current_caller
from .rpc.dispatch import Dispatcher
from .settings import Settings
from .tracks import TrackLibrary, cache_key

log = logging.getLogger(__name__)

Notify = Callable[[str, dict[str, Any]], None]


def new_track_id() -> str:
    return "t" + secrets.token_hex(6)


class App:
    def __init__(self, settings: Settings, notify: Notify, *, registry: BackendRegistry | None = None,
                 store: ModelStore | None = None, clock: Callable[[], float] = time.monotonic,
                 id_factory: Callable[[], str] = new_track_id) -> None:
        self.settings = settings
        for problem in settings.problems:  # found before logging was set up
            log.warning("%s", problem)
        self._clock = clock
        self._new_id = id_factory
        self.store = store or ModelStore(settings.models_dir)
        self.library = TrackLibrary(settings.tracks_dir)
        self.playback = PlaybackService(settings, self.library, notify)
        self._notify = notify = self.playback.observe(notify)  # the radio hears job events
        self.registry = registry or BackendRegistry(settings, self.store, on_status=self._backend_status)
        # One worker thread does every model load, generation and file write, in order.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lofi-job")
        self.jobs = JobQueue(runner=self._run_job, notify=notify, executor=self._worker, clock=clock)
        self.playback.bind(submit=lambda request: self.generate(P.parse(P.GenerateParams, request)),
                           cancel=self.jobs.cancel)
        self._downloads: dict[str, tuple[threading.Thread, CancelToken]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self.shutdown_requested = asyncio.Event()
        # Set by the transport: how clients reach this daemon (daemon_info reports it).
        self.transport_info: Callable[[], dict[str, Any]] = lambda: {"transport": "in-process", "clients": 1}
        self._started = time.time()

    # ----- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.jobs.start()

    async def close(self) -> None:
        await self.playback.close()
        for _thread, token in self._downloads.values():
            token.cancel()
        await self.jobs.shutdown()
        unload = asyncio.get_running_loop().run_in_executor(self._worker, self.registry.unload_all)
        try:  # behind a job that ignored its cancel, this would wait for ever
            await asyncio.wait_for(unload, timeout=10)
        except asyncio.TimeoutError:
            log.warning("the worker is still busy; exiting without unloading the model")
        self._worker.shutdown(wait=False, cancel_futures=True)

    def _notify_threadsafe(self, method: str, params: dict[str, Any]) -> None:
        if self._loop is not None and threading.get_ident() != self._loop_thread:
            self._loop.call_soon_threadsafe(self._notify, method, params)
        else:
            self._notify(method, params)

    def _backend_status(self, backend: str, status: str) -> None:
        self._notify_threadsafe("backend_status", {"backend": backend, "status": status})

    # ----- methods ---------------------------------------------------------------------------
    def dispatcher(self) -> Dispatcher:
        d = Dispatcher()
        d.register("ping", P.NoParams, self.ping)
        d.register("generate", P.GenerateParams, self.generate)
        d.register("cancel", P.TrackParams, self.cancel)
        d.register("get_status", P.NoParams, self.get_status)
        d.register("get_backends", P.NoParams, self.get_backends)
        d.register("set_backend", P.BackendParams, self.set_backend)
        d.register("download_backend", P.BackendParams, self.download_backend)
        d.register("list_tracks", P.ListTracksParams, self.list_tracks)
        d.register("delete_track", P.TrackParams, self.delete_track)
        d.register("shutdown", P.ShutdownParams, self.shutdown)
        d.register("daemon_info", P.NoParams, self.daemon_info)
        self.playback.register(d)
        return d

    async def ping(self, _: P.NoParams) -> dict[str, Any]:
        # log_file: the daemon's one log, so clients open the same file (:LofiLog).
        return {"status": "ok", "version": __version__, "protocol": PROTOCOL_VERSION,
                "log_file": str(self.settings.logs_dir / "daemon.log")}

    async def generate(self, p: P.GenerateParams) -> dict[str, Any]:
        name = self.registry.canonical(p.backend or self.registry.default)
        backend = self.registry.get(name)
        caps = backend.capabilities()
        if not caps.min_duration_sec <= p.duration_sec <= caps.max_duration_sec:
            raise InvalidDuration(
                f"duration_sec must be between {caps.min_duration_sec:g} and {caps.max_duration_sec:g} "
                f"for {name}, got {p.duration_sec:g}",
                min_duration_sec=caps.min_duration_sec, max_duration_sec=caps.max_duration_sec, backend=name,
            )
        backend_params = caps.resolve_params(p.backend_params, backend=name)
        backend_params = self._track_params(caps, backend_params)
        if self.registry.status(name) in ("not_installed", "downloading"):
            raise BackendNotInstalled(f"backend {name} is not installed",
                                      hint=_setup_hint(name, backend, "to download it"),
                                      backend=name)
        # Random seeds stay below 2^32 like the official ACE-Step code (and exact in Lua numbers).
        seed = p.seed if p.seed is not None else secrets.randbelow(2**32)
        fmt = p.format or self.settings.prefs.output_format
        request = GenerationRequest(prompt=p.prompt, duration_sec=float(p.duration_sec), seed=seed,
                                    params=backend_params)
        key = cache_key(backend=name, model_version=backend.model_version, prompt=p.prompt, seed=seed,
                        duration_sec=request.duration_sec, fmt=fmt, params=backend_params)
        cached = self.library.find_cached(key)
        if cached is not None:
            result = {"track_id": cached.track_id, "status": "cached", "position": 0, "seed": seed, "backend": name}
            # The reply goes out first; the completion follows on the next loop turn.
            asyncio.get_running_loop().call_soon(self._notify, "generation_complete",
                                                 _complete_payload(cached.track_id, cached.path, cached.meta))
            return result
        running = self.jobs.find_by_cache_key(key)
        if running is not None:  # the same request from another client (or twice): one job, one file
            job, position = running
            return {"track_id": job.track_id, "status": "generating" if position == 0 else "queued",
                    "position": position, "seed": seed, "backend": name, "joined": True}
        job = Job(track_id=self._new_id(), backend=name, request=request, fmt=fmt, cache_key=key)
        position = self.jobs.submit(job)
        return {"track_id": job.track_id, "status": "generating" if position == 0 else "queued",
                "position": position, "seed": seed, "backend": name}

    def _track_params(self, caps: Any, params: dict[str, Any]) -> dict[str, Any]:
        """A "track" parameter (e.g. stable_audio_3's ``continue_from``) names a finished track:
        TRACK_NOT_FOUND unless it exists; the backend gets its file as ``<name>_path``."""
        out = dict(params)
        for spec in caps.parameters:
            if spec.type == "track" and params.get(spec.name):
                out[f"{spec.name}_path"] = str(self.library.get(params[spec.name]).path)
        return out

    async def cancel(self, p: P.TrackParams) -> dict[str, bool]:
        try:
            return self.jobs.cancel(p.track_id)
        except TrackNotFound:
            self.library.get(p.track_id)  # TRACK_NOT_FOUND unless it is a finished track
            raise AlreadyComplete(f"track {p.track_id} is already complete", track_id=p.track_id,
                                  state="complete") from None

    async def get_status(self, _: P.NoParams) -> dict[str, Any]:
        return {**self.jobs.status(), "backend": self.registry.default,
                "backend_status": self.registry.status(self.registry.default)}

    async def get_backends(self, _: P.NoParams) -> dict[str, Any]:
        return {"backends": [self.registry.describe(n) for n in self.registry.names],
                "default_backend": self.registry.default}

    async def set_backend(self, p: P.BackendParams) -> dict[str, Any]:
        name = self.registry.canonical(p.backend)
        if self.registry.status(name) in ("not_installed", "downloading"):
            raise BackendNotInstalled(f"backend {name} is not installed",
                                      hint=_setup_hint(name, self.registry.get(name), "first"), backend=name)
        previous = self.registry.default
        self.registry.default = name
        self.settings.prefs.default_backend = name
        try:
            self.settings.save_prefs()
        except OSError as exc:
            log.warning("could not persist the default backend: %s", exc)
        if previous != name:
            # Free the old model in the worker, after any job that is still using it.
            unload = asyncio.get_running_loop().run_in_executor(self._worker, self.registry.unload_all, name)
            unload.add_done_callback(_log_failure("unloading the previous backend"))
        return {"backend": name, "previous": previous}

    async def download_backend(self, p: P.BackendParams) -> dict[str, Any]:
        name = self.registry.canonical(p.backend)
        backend = self.registry.get(name)
        manifest = getattr(backend, "manifest", None)  # what this backend will load (None: no weights)
        self._refuse_a_second_download(name)
        if manifest is None or (backend.is_installed()
                                and not await asyncio.to_thread(self.store.needs_repair, manifest)):
            return {"started": False, "already_installed": True}
        self._refuse_a_second_download(name)  # another client may have started one while we re-hashed
        self.registry.set_transient(name, "downloading")
        token = CancelToken()
        thread = threading.Thread(target=self._download, args=(name, manifest, token),
                                  name=f"lofi-download-{name}", daemon=True)
        self._downloads[name] = (thread, token)
        thread.start()
        return {"started": True, "already_installed": False}

    def _refuse_a_second_download(self, name: str) -> None:
        running = self._downloads.get(name)
        if running is not None and running[0].is_alive():
            raise DownloadInProgress(f"{name} is already downloading", backend=name)

    def install(self, name: str, manifest: Any, on_progress: Any, cancel: CancelToken) -> None:
        """Setup of one backend (blocking): download its files, then let it prepare them
        (``finish_setup``: ace_step_15 converts a checkpoint layout). The CLI's setup comes here too."""
        self.store.download(manifest, on_progress, cancel)
        finish_setup = getattr(self.registry.get(name), "finish_setup", None)
        if finish_setup is not None:
            finish_setup(on_progress, cancel)

    def _download(self, name: str, manifest: Any, cancel: CancelToken) -> None:
        """Runs in its own thread, so generation keeps working during a download."""
        import dataclasses

        def on_progress(progress: Any) -> None:
            self._notify_threadsafe("download_progress", dataclasses.asdict(progress))

        def finish(method: str, payload: dict[str, Any]) -> None:
            # On the loop: the state is settled before the client hears the outcome.
            self.registry.set_transient(name, None)
            self._notify(method, payload)

        try:
            self.install(name, manifest, on_progress, cancel)
        except JobCancelled:
            outcome = ("download_error", {"backend": name, "code": ErrorCode.CANCELLED.name,
                                          "message": "download cancelled", "hint": "Run :LofiSetup again to resume it."})
        except LofiError as exc:
            outcome = ("download_error", {**exc.data, "backend": name, "code": exc.code.name, "message": exc.message})
        except Exception as exc:
            log.exception("download of %s crashed", name)
            outcome = ("download_error", {"backend": name, "code": ErrorCode.DOWNLOAD_FAILED.name,
                                          "message": f"download failed: {exc}",
                                          "hint": "See the daemon log, then run :LofiSetup again."})
        else:
            outcome = ("download_complete", {"backend": name})
        if self._loop is not None:
            self._loop.call_soon_threadsafe(finish, *outcome)

    async def list_tracks(self, p: P.ListTracksParams) -> dict[str, Any]:
        backend = self.registry.canonical(p.backend) if p.backend else None
        return {"tracks": [t.to_dict() for t in self.library.list(backend=backend, limit=p.limit)]}

    async def delete_track(self, p: P.TrackParams) -> dict[str, Any]:
        track = self.library.delete(p.track_id)
        return {"deleted": True, "track_id": track.track_id}

    async def shutdown(self, p: P.ShutdownParams) -> dict[str, Any]:
        """End the asking client's connection; the daemon itself only with ``force``.

        A shared daemon keeps serving the others and exits on its own when the last client
        has gone for ``idle_exit_sec``. A stdio daemon has one client, so it stops.
        """
        caller = current_caller.get()
        if p.force or caller is None or not caller.shared:
            self.shutdown_requested.set()
            return {"status": "shutting_down"}
        caller.end_after_reply()
        return {"status": "disconnecting"}

    async def daemon_info(self, _: P.NoParams) -> dict[str, Any]:
        return {"pid": os.getpid(), "uptime_sec": round(time.time() - self._started, 1), "version": __version__,
                "protocol": PROTOCOL_VERSION, "cache_dir": str(self.settings.cache_dir),
                "socket_path": None, **self.transport_info()}

    # ----- the job itself (worker thread) ----------------------------------------------------
    def _run_job(self, job: Job, progress: JobProgress) -> dict[str, Any]:
        yield_to_playback()  # this thread and the torch threads it starts: below the mixer
        started = time.perf_counter()
        backend = self.registry.ensure_loaded(job.backend, self.settings.device_plan)
        job.cancel.check()
        try:
            result = backend.generate(job.request, progress, job.cancel)
        except LofiError:
            empty_cache()  # a cancelled job's activations go back before the next job starts
            raise
        except Exception as exc:
            empty_cache()
            raise ModelInferenceFailed(f"{job.backend} failed: {type(exc).__name__}: {exc}",
                                       hint="Retry with another seed; see the daemon log if it repeats.") from exc
        import numpy as np

        if not np.all(np.isfinite(result.samples)):
            raise ModelInferenceFailed("the model produced NaN/inf audio", hint="Retry with another seed.")
        finished = audio.finish(result.samples, result.sample_rate, loopable=result.loopable)
        data = encode_isolated(finished, audio.OUTPUT_SAMPLE_RATE, job.fmt, cancelled=lambda: job.cancel.cancelled)
        duration = finished.shape[-1] / audio.OUTPUT_SAMPLE_RATE
        meta = {
            "prompt": job.request.prompt,
            "backend": job.backend,
            "model_version": backend.model_version,
            "seed": job.request.seed,
            "requested_duration_sec": job.request.duration_sec,
            "duration_sec": round(duration, 4),
            "sample_rate": audio.OUTPUT_SAMPLE_RATE,
            "channels": int(finished.shape[0]),
            "format": job.fmt,
            "params": job.request.params,
            "generation_time_sec": round(time.perf_counter() - started, 3),
            "created_at": time.time(),
            "cache_key": job.cache_key,
            "loopable": result.loopable,
            **{k: v for k, v in result.metadata.items() if k not in ("prompt", "seed", "backend")},
        }
        track = self.library.save(job.track_id, data, job.fmt, meta, before_commit=job.cancel.commit)
        return _complete_payload(track.track_id, track.path, track.meta)


def _log_failure(what: str) -> Callable[[Any], None]:
    def check(future: Any) -> None:
        if not future.cancelled() and future.exception() is not None:
            log.error("%s failed", what, exc_info=future.exception())

    return check


def _complete_payload(track_id: str, path: Any, meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "track_id": track_id,
        "path": str(path),
        "duration_sec": meta.get("duration_sec"),
        "sample_rate": meta.get("sample_rate"),
        "generation_time_sec": meta.get("generation_time_sec"),
        "backend": meta.get("backend"),
        "model_version": meta.get("model_version"),
        "seed": meta.get("seed"),
        "prompt": meta.get("prompt"),
    }


def _setup_hint(name: str, backend: Any, tail: str) -> str:
    """What to run for a backend that is not installed: the model libraries come first."""
    setup = f":LofiSetup {name.replace('_', '-')}"
    if backend.missing_libraries():
        return f"First :LofiInstall models (the model libraries), then {setup}."
    return f"Run {setup} {tail}."
