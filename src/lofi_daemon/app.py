"""Composition root: builds settings, library, registry, jobs and the RPC methods.

Nothing here is global; ``App`` gets its parts injected so tests can build the same graph.
The method handlers are thin: decode (already done by rpc.params), validate against the
backend, hand to jobs, answer.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import logging
import os
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from . import PROTOCOL_VERSION, __version__, audio, memory
from .backends.base import Continuation, GenerationRequest
from .backends.registry import BackendRegistry
from .device import empty_cache
from .encoder import encode_isolated
from .cancel import CancelToken
from .idle_unload import IdleUnloader
from .errors import (AlreadyComplete, BackendNotInstalled, DownloadInProgress, ErrorCode, InvalidDuration,
                     InvalidParams, JobCancelled, LofiError, ModelInferenceFailed, TrackNotFound, clip,
                     resource_error)
from .jobs import Job, JobProgress, JobQueue
from .models.store import ModelStore
from .playback.methods import PlaybackService
from .playback.priority import yield_to_playback
from .remote.generator import RemoteGenerator
from .remote.machine import gpu_names
from .rpc import params as P
from .rpc.caller import current_caller
from .rpc.dispatch import Dispatcher
from .settings import Settings
from .tracks import TrackLibrary, cache_key

log = logging.getLogger(__name__)

Notify = Callable[[str, dict[str, Any]], None]
REMOTE_LIST_WAIT_SEC = 10.0  # get_backends waits this long for the remote generator's list


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
        self._notify = notify = self._touching_idle_timer(notify)  # so does the idle unloader
        self.registry = registry or BackendRegistry(settings, self.store, on_status=self._backend_status)
        # The remote generator (docs/remote.md): jobs for the backends it takes run there.
        generator_argv, generator_backends = settings.generator()
        self.remote = (RemoteGenerator(generator_argv, self._canonical_names(generator_backends), self.library, notify)
                       if generator_argv else None)
        self.idle_unloader = IdleUnloader(settings.idle_unload_sec, loaded=self.registry.loaded_name,
                                          needed_by=self._model_needed_by,
                                          unload=lambda: self._unload_in_worker("idle"))
        # One worker thread does every model load, generation and file write, in order.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lofi-job")
        self.jobs = JobQueue(runner=self._run_job, notify=notify, executor=self._worker, clock=clock)
        self.playback.bind(submit=self._radio_generate,
                           cancel=self.jobs.cancel, capabilities=self._capabilities_of)
        self._downloads: dict[str, tuple[threading.Thread, CancelToken]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self.shutdown_requested = asyncio.Event()
        # Set by the transport: how clients reach this daemon (daemon_info reports it).
        self.transport_info: Callable[[], dict[str, Any]] = lambda: {"transport": "in-process", "clients": 1}
        self._started = time.time()

    def _capabilities_of(self, backend: str | None) -> tuple[str, Any]:
        """(canonical name, capabilities) of ``backend`` or the default (the radio asks)."""
        name = self.registry.canonical(backend or self.registry.default)
        return name, self.registry.get(name).capabilities()
    def _canonical_names(self, names: list[str] | None) -> list[str] | None:
        """Backend names as the registry spells them ("ace-step" -> "ace_step"); unknown ones are logged."""
        if names is None:
            return None
        out = []
        for name in names:
            try:
                out.append(self.registry.canonical(name))
            except LofiError:
                log.warning("generator_backends: %r is not a backend; ignoring it", name)
        return out

    # ----- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.jobs.start()
        if self.remote is not None:
            self.remote.start()
        self.idle_unloader.start()

    async def close(self) -> None:
        self.idle_unloader.close()
        await self.playback.close()
        for _thread, token in self._downloads.values():
            token.cancel()
        await self.jobs.shutdown()
        if self.remote is not None:  # after the jobs: a running remote job's cancel goes out first
            await self.remote.close()
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
        d.register("read_track", P.ReadTrackParams, self.read_track)
        d.register("remote_status", P.NoParams, self.remote_status)
        d.register("unload", P.NoParams, self.unload)
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
        goes_remote = self.remote is not None and self.remote.handles(name)  # the remote checks its own install
        if not goes_remote and self.registry.status(name) in ("not_installed", "downloading"):
            raise BackendNotInstalled(f"backend {name} is not installed",
                                      hint=_setup_hint(name, backend, "to download it"),
                                      backend=name)
        # Random seeds stay below 2^32 like the official ACE-Step code (and exact in Lua numbers).
        seed = p.seed if p.seed is not None else secrets.randbelow(2**32)
        fmt = p.format or self.settings.prefs.output_format
        continuation = self._continuation(p.continue_from, name, caps.continues_audio)
        request = GenerationRequest(prompt=p.prompt, duration_sec=float(p.duration_sec), seed=seed,
                                    params=backend_params, continue_from=continuation)
        keyed = backend_params if continuation is None else {**backend_params, "continue_from": continuation.track_id}
        key = cache_key(backend=name, model_version=backend.model_version, prompt=p.prompt, seed=seed,
                        duration_sec=request.duration_sec, fmt=fmt, params=keyed)
        words = _prompt_words(backend, p.prompt)
        if p.play:
            self.playback.check_can_play()  # a remote daemon refuses before any work
        cached = self.library.find_cached(key)
        if cached is not None:
            result = {"track_id": cached.track_id, "status": "cached", "position": 0, "seed": seed, "backend": name,
                      **words}
            if p.play:  # (the completion below plays it)
                self.playback.autoplay(cached.track_id)
            # The reply goes out first; the completion follows on the next loop turn.
            asyncio.get_running_loop().call_soon(self._notify, "generation_complete",
                                                 _complete_payload(cached.track_id, cached.path, cached.meta))
            return result
        running = self.jobs.find_by_cache_key(key)
        if running is not None:  # the same request from another client (or twice): one job, one file
            job, position = running
            if p.play:
                self.playback.autoplay(job.track_id)
            return {"track_id": job.track_id, "status": "generating" if position == 0 else "queued",
                    "position": position, "seed": seed, "backend": name, "joined": True, **words}
        job = Job(track_id=self._new_id(), backend=name, request=request, fmt=fmt, cache_key=key)
        position = self.jobs.submit(job)
        if p.play:
            self.playback.autoplay(job.track_id)
        return {"track_id": job.track_id, "status": "generating" if position == 0 else "queued",
                "position": position, "seed": seed, "backend": name, **words}

    def _continuation(self, track_id: str | None, backend: str, can_continue: bool) -> Continuation | None:
        """``continue_from``: only for backends that declare it, and only a track we have."""
        if track_id is None:
            return None
        if not can_continue:
            raise InvalidParams(f"backend {backend} cannot continue audio (continue_from)", field="continue_from",
                                backend=backend, hint="Leave continue_from out, or use a backend that continues audio.")
        track = self.library.get(track_id)  # TRACK_NOT_FOUND
        if not track.path.is_file():
            raise TrackNotFound(f"the audio file of {track_id} is missing", track_id=track_id,
                                hint="Continue another track, or leave continue_from out.")
        return Continuation(track_id=track.track_id, path=str(track.path))

    async def _radio_generate(self, request: dict[str, Any]) -> dict[str, Any]:
        """The radio's next track. While the remote generator is away (it failed in the last
        minute), a track for a backend that goes there is made here on procedural instead, so
        the music goes on; after that minute the remote is tried again."""
        p = P.parse(P.GenerateParams, request)
        if self.remote is not None and not self.remote.handles("procedural") and self.remote.away():
            name = self.registry.canonical(p.backend or self.registry.default)
            if self.remote.handles(name):
                log.info("radio: the remote generator is away; making the next track here on procedural")
                p = P.parse(P.GenerateParams, {"prompt": p.prompt, "duration_sec": p.duration_sec,
                                               "backend": "procedural"})
        return await self.generate(p)

    async def cancel(self, p: P.TrackParams) -> dict[str, bool]:
        try:
            return self.jobs.cancel(p.track_id)
        except TrackNotFound:
            self.library.get(p.track_id)  # TRACK_NOT_FOUND unless it is a finished track
            raise AlreadyComplete(f"track {p.track_id} is already complete", track_id=p.track_id,
                                  state="complete") from None

    async def get_status(self, _: P.NoParams) -> dict[str, Any]:
        return {**self.jobs.status(), "backend": self.registry.default,
                "backend_status": self.registry.status(self.registry.default), "memory": self._memory()}

    async def get_backends(self, _: P.NoParams) -> dict[str, Any]:
        entries = [self.registry.describe(n) for n in self.registry.names]
        if self.remote is not None and any(self.remote.handles(e["name"]) for e in entries):
            entries = await self._with_remote_backends(entries)
        return {"backends": entries, "default_backend": self.registry.default}

    async def _with_remote_backends(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The remote's own status for the backends that go there (what :LofiSetup acts on)."""
        assert self.remote is not None
        try:
            if self.remote.away():  # failed a moment ago: say so at once rather than wait on ssh again
                raise LofiError(self.remote.connection.last_error or "the remote generator is away")
            # A slow ssh start goes on in the background; the client's request must not time out.
            there = await asyncio.wait_for(self.remote.backends(), REMOTE_LIST_WAIT_SEC)
        except (LofiError, asyncio.TimeoutError) as exc:
            error = exc.message if isinstance(exc, LofiError) else "the remote generator is still starting"
            return [{**e, "remote": True, "remote_error": error} if self.remote.handles(e["name"]) else e
                    for e in entries]
        return [{**there.get(e["name"], e), "remote": True} if self.remote.handles(e["name"]) else e
                for e in entries]

    async def set_backend(self, p: P.BackendParams) -> dict[str, Any]:
        name = self.registry.canonical(p.backend)
        goes_remote = self.remote is not None and self.remote.handles(name)  # installed there, not here
        if not goes_remote and self.registry.status(name) in ("not_installed", "downloading"):
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
        if self.remote is not None and self.remote.handles(name):  # set up where it will run
            return await self.remote.connection.request("download_backend", {"backend": name})
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
                "socket_path": None, **self.transport_info(), "gpu": gpu_names(),
                "generator": None if self.remote is None else {
                    "command": self.remote.argv, "connected": self.remote.connection.connected,
                    "pid": self.remote.connection.pid},
                "memory": self._memory(), "idle_unload_sec": self.idle_unloader.idle_sec}

    async def remote_status(self, _: P.NoParams) -> dict[str, Any]:
        """The remote generator as :checkhealth shows it (connects when it is not connected)."""
        if self.remote is None:
            return {"configured": False}
        return {"configured": True, **await self.remote.describe()}

    async def read_track(self, p: P.ReadTrackParams) -> dict[str, Any]:
        """One chunk of a finished track, base64, with its size and sha256; the sidecar with the first."""
        track, data, size = await asyncio.to_thread(self.library.read_chunk, p.track_id, p.offset, p.max_bytes)
        sha256 = track.meta.get("sha256")
        if sha256 is None and p.offset == 0:  # an old sidecar without it: hashed once, for the first chunk
            sha256 = await asyncio.to_thread(_file_sha256, track.path)
        out = {"track_id": track.track_id, "offset": p.offset, "size": size, "sha256": sha256,
               "format": track.meta.get("format"), "data": base64.b64encode(data).decode("ascii"),
               "eof": p.offset + len(data) >= size}
        if p.offset == 0:
            out["meta"] = track.meta
        return out

    # ----- memory: what the daemon holds, and letting the model go -----------------------------
    def _memory(self) -> dict[str, Any]:
        return memory.describe(playback_pid=self.playback.engine.worker_pid, held=self.registry.held)

    async def unload(self, _: P.NoParams) -> dict[str, Any]:
        """Free the model now; behind the running job when there is one (it needs the weights)."""
        waited = not self.jobs.idle
        report = await self._unload_in_worker("request")
        return {**report, "waited_for_job": waited}

    def _unload_in_worker(self, reason: str) -> "asyncio.Future[dict[str, Any]]":
        return asyncio.get_running_loop().run_in_executor(self._worker, self._unload_now, reason)

    def _unload_now(self, reason: str) -> dict[str, Any]:
        """Worker thread: unload every model and say what came back (RSS from /proc)."""
        if reason == "idle" and not self.jobs.idle:
            # A job came in after the timer's check: it would only load the model again.
            # (A read from this thread; the loop sets the job before handing it to us.)
            return {"unloaded": [], "weight_bytes": 0, "rss_before_bytes": None, "rss_after_bytes": None,
                    "freed_bytes": None}
        held = self.registry.held
        before = memory.rss_bytes()
        unloaded = self.registry.unload_all()
        after = memory.rss_bytes()
        freed = before - after if before is not None and after is not None else None
        if unloaded:
            log.info("unloaded %s (%s): %s MB of weights, RSS %s -> %s MB (freed %s MB)", ", ".join(unloaded),
                     reason, _mb(held["weight_bytes"] if held else None), _mb(before), _mb(after), _mb(freed))
        return {"unloaded": unloaded, "weight_bytes": held["weight_bytes"] if held and unloaded else 0,
                "rss_before_bytes": before, "rss_after_bytes": after, "freed_bytes": freed}

    def _model_needed_by(self, name: str) -> str | None:
        """Why the loaded model ``name`` must stay (None: it may go). Runs on the loop."""
        if not self.jobs.idle:
            return "a job is running or queued"
        radio_backend = self.playback.radio.next_backend(self.registry.default)
        if self.playback.engine.worker_state.get("state") == "paused":
            radio_backend = None  # a paused radio needs no next track until it plays again
        try:
            if radio_backend is not None and self.registry.canonical(radio_backend) == name:
                return "the radio's next track needs it"
        except LofiError:  # a radio on an unknown backend will not load this one
            pass
        return None

    def _touching_idle_timer(self, notify: Notify) -> Notify:
        def touched(method: str, params: dict[str, Any]) -> None:
            if method.startswith("generation_") or method == "backend_status":
                self.idle_unloader.touch()
            notify(method, params)

        return touched

    # ----- the job itself (worker thread) ----------------------------------------------------
    def _run_job(self, job: Job, progress: JobProgress) -> dict[str, Any]:
        yield_to_playback()  # this thread and the torch threads it starts: below the mixer
        if self.remote is not None and self.remote.handles(job.backend):
            track = self.remote.run(job, progress)
            return _complete_payload(track.track_id, track.path, track.meta)
        started = time.perf_counter()
        backend = self.registry.ensure_loaded(job.backend, self.settings.device_plan)
        job.cancel.check()
        # Someone plays this track as it decodes (playback/live.py): the backend hands over windows.
        windowed = backend.capabilities().decodes_in_windows
        live = self.playback.live_windows(job.track_id, job.request.prompt) if windowed else None
        request = job.request if live is None else dataclasses.replace(job.request, windows=live)
        try:
            result = backend.generate(request, progress, job.cancel)
            if live is not None:
                live.close()
        except LofiError:
            if live is not None:
                live.abort()
            empty_cache()  # a cancelled job's activations go back before the next job starts
            raise
        except Exception as exc:
            if live is not None:
                live.abort()
            empty_cache()
            exhausted = resource_error(exc, job.backend)
            if exhausted is not None:  # out of descriptors or memory: say so, not "another seed"
                raise exhausted from exc
            raise ModelInferenceFailed(clip(f"{job.backend} failed: {type(exc).__name__}: {exc}"),
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
            **(result.prompt_report or {}),  # understood / ignored words, where the backend reads words
        }
        track = self.library.save(job.track_id, data, job.fmt, meta, before_commit=job.cancel.commit)
        return _complete_payload(track.track_id, track.path, track.meta)


def _file_sha256(path: Any) -> str:
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)  # never a FIFO or a link
    try:
        while chunk := os.read(fd, 1 << 20):
            digest.update(chunk)
    finally:
        os.close(fd)
    return digest.hexdigest()


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
        **{k: meta[k] for k in ("understood", "ignored") if isinstance(meta.get(k), list)},
    }


def _mb(value: int | None) -> str:
    return "?" if value is None else f"{value / 1e6:.0f}"


def _prompt_words(backend: Any, prompt: str) -> dict[str, list[str]]:
    """``{understood, ignored}`` from a backend that reads prompt words (procedural); else empty."""
    read = getattr(backend, "read_prompt", None)
    return read(prompt) if callable(read) else {}


def _setup_hint(name: str, backend: Any, tail: str) -> str:
    """What to run for a backend that is not installed: the model libraries come first."""
    setup = f":LofiSetup {name.replace('_', '-')}"
    if backend.missing_libraries():
        return f"First :LofiInstall models (the model libraries), then {setup}."
    return f"Run {setup} {tail}."
