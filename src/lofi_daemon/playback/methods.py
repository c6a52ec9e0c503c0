"""The playback RPC methods, registered on the daemon's dispatcher by ``PlaybackService``.

``App`` builds one service, routes its notifications through ``observe`` (so the radio hears
job events), hands it ``generate``/``cancel`` with ``bind``, and calls ``register`` and
``close``. Everything else about playback lives in this package.

Remote daemons: a daemon started over ssh (``SSH_CONNECTION`` is set) refuses to play,
because its sound would come out of the other machine, not the editor's. ``LOFI_PLAYBACK=local``
says that this machine's speakers are the ones you hear (e.g. ssh to your own desktop).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any, Awaitable, Callable

from ..errors import InvalidParams, PlaybackFailed, TrackNotFound
from ..rpc import params as P
from ..rpc.dispatch import Dispatcher
from ..tracks import Track, TrackLibrary
from .engine import PlaybackEngine
from .radio import Radio, RadioPlan
from .sinks import cap

Notify = Callable[[str, dict[str, Any]], None]

RADIO_DEFAULT_DURATION_SEC = 30.0
QUIT_FADE_SEC = 1.0  # the last editor quit: the music fades out, no hard cut


def sink_from_settings(settings: Any, env: dict[str, str]) -> str:
    """``LOFI_PLAYER_SINK``, else ``player_sink`` in config.json, else ``auto``."""
    configured = getattr(settings.prefs, "extra", {}).get("player_sink")
    return env.get("LOFI_PLAYER_SINK") or (configured if isinstance(configured, str) else "") or "auto"


def remote_reason(env: dict[str, str]) -> str | None:
    if env.get("LOFI_PLAYBACK", "").lower() == "local":
        return None
    if env.get("SSH_CONNECTION") or env.get("SSH_CLIENT"):
        host = (env.get("SSH_CONNECTION") or env.get("SSH_CLIENT") or "").split(" ")
        where = host[2] if len(host) > 2 else "this machine"
        return (f"the daemon runs on another machine (over ssh, at {where}): its sound would come out "
                "there, not where you are")
    return None


class PlaybackService:
    def __init__(self, settings: Any, library: TrackLibrary, notify: Notify,
                 env: dict[str, str] | None = None) -> None:
        self._env = dict(os.environ if env is None else env)
        self._library = library
        self._notify = notify
        self.engine = PlaybackEngine(notify, sink_spec=sink_from_settings(settings, self._env))
        self._submit: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]] | None = None
        self._cancel: Callable[[str], Any] | None = None
        self.radio = Radio(self.engine, submit=self._generate, cancel=lambda tid: self._cancel and self._cancel(tid),
                           play=self._radio_play, first_from_library=self._first_from_library,
                           notify_error=self._radio_error)
        self.engine.extra_state = self.radio.describe
        self._remote = remote_reason(self._env)
        self.keep_playing = False  # the last play/radio_start's player.keep_playing

    def _radio_error(self, payload: dict[str, Any]) -> None:
        """The radio's reason can quote a job's error text: capped like every foreign string,
        and without the empty ``stderr`` that sink errors no longer carry."""
        payload = {k: v for k, v in payload.items() if k != "stderr"}
        payload["message"] = cap(str(payload.get("message", "")))
        self._notify("playback_error", payload)

    # ----- wiring ------------------------------------------------------------------------------
    def observe(self, notify: Notify) -> Notify:
        """``notify`` that also lets the radio see generation events."""
        def observed(method: str, params: dict[str, Any]) -> None:
            notify(method, params)
            if method.startswith("generation_"):
                if method == "generation_started" and not self._remote:
                    self.engine.prewarm()  # a track is coming: the first play should not wait for the worker
                self.radio.on_job_event(method, params)
        return observed

    def bind(self, *, submit: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
             cancel: Callable[[str], Any]) -> None:
        self._submit, self._cancel = submit, cancel

    def last_client_left(self) -> None:
        """The last editor disconnected: fade out and stop the radio, unless keep_playing."""
        if self.keep_playing:
            return
        self.radio.stop()
        if self.engine.worker_state.get("state") != "stopped":
            self.engine.send({"cmd": "stop", "fade_sec": QUIT_FADE_SEC})

    def exit_when_silent(self, exit_now: Callable[[], None], still_alone: Callable[[], bool]) -> None:
        """The idle timer ran out: exit now, or (keep_playing) once the music has stopped."""
        if not self.keep_playing or self.engine.worker_state.get("state") == "stopped":
            return exit_now()

        def on_event(_: dict[str, Any]) -> None:
            if not still_alone():  # an editor came back: its leaving arms the timer again
                self.engine.listeners.remove(on_event)
            elif self.engine.worker_state.get("state") == "stopped" and not self.radio.active:
                self.engine.listeners.remove(on_event)
                exit_now()
        self.engine.listeners.append(on_event)

    def register(self, d: Dispatcher) -> None:
        d.register("play", P.PlayParams, self.play)
        d.register("pause", P.NoParams, self.pause)
        d.register("resume", P.NoParams, self.resume)
        d.register("stop", P.NoParams, self.stop)
        d.register("next", P.NoParams, self.next)
        d.register("seek", P.SeekParams, self.seek)
        d.register("set_volume", P.VolumeParams, self.set_volume)
        d.register("set_loop", P.LoopParams, self.set_loop)
        d.register("get_playback", P.NoParams, self.get_playback)
        d.register("radio_start", P.RadioStartParams, self.radio_start)
        d.register("radio_stop", P.RadioStopParams, self.radio_stop)
        d.register("radio_skip", P.NoParams, self.radio_skip)

    async def close(self) -> None:
        self.radio.stop()
        await self.engine.close()

    # ----- helpers -----------------------------------------------------------------------------
    def _refuse_remote(self) -> None:
        if self._remote:
            raise PlaybackFailed(self._remote, remote=True,
                                 hint="Play the file on your machine (the path is in the library), or set "
                                      "LOFI_PLAYBACK=local for the daemon if these speakers are yours.")

    async def _generate(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self._submit is not None, "PlaybackService.bind() was not called"
        return await self._submit(request)

    def _play_command(self, cmd: str, track_id: str, path: Path, meta: dict[str, Any]) -> None:
        # The sidecar says so (procedural-2 on): older procedural files have faded edges, so an
        # exact wrap would dip; they take the tail->head crossfade like any other track.
        loopable = meta.get("loopable") is True
        info = {"prompt": meta.get("prompt") or path.name, "backend": meta.get("backend")}
        self.engine.tracks[track_id] = info
        command = {"cmd": cmd, "track_id": track_id, "path": str(path), "loopable": loopable, "info": info}
        if isinstance(meta.get("duration_sec"), (int, float)):
            command["expect_sec"] = meta["duration_sec"]  # the worker refuses a file of another length
        self.engine.send(command)

    def _radio_play(self, track_id: str, how: str) -> None:
        track = self._library.get(track_id)
        self._play_command(how, track_id, track.path, track.meta)

    def _first_from_library(self, plan: RadioPlan) -> str | None:
        for track in self._library.list():
            if track.meta.get("prompt") == plan.prompts[0] and track.path.is_file() and (
                    plan.backend is None or track.meta.get("backend") == plan.backend):
                return track.track_id
        return None

    def _resolve(self, p: P.PlayParams) -> tuple[str, Path, dict[str, Any]]:
        if (p.track_id is None) == (p.path is None):
            raise InvalidParams("play needs exactly one of track_id or path", field="track_id")
        if p.path is not None:
            path = Path(p.path).expanduser()
            if not path.is_file():
                raise TrackNotFound(f"no audio file at {path}", path=str(path), hint="Check the path.")
            for track in self._library.list():  # a library file keeps its prompt and loop point
                if track.path.resolve() == path.resolve():
                    return track.track_id, track.path, track.meta
            return f"file:{path.name}", path, {"prompt": path.stem}
        if p.track_id == "last":
            tracks = self._library.list(limit=1)
            if not tracks:
                raise TrackNotFound("the library is empty: nothing to play", hint="Generate a track first (:LofiGenerate).")
            track = tracks[0]
        else:
            track = self._library.get(p.track_id)
        if not track.path.is_file():
            raise TrackNotFound(f"the audio file of {track.track_id} is missing ({track.path})",
                                track_id=track.track_id, hint="Delete the track and generate it again.")
        return track.track_id, track.path, track.meta

    def _ok(self) -> dict[str, Any]:
        return self.engine.state()

    # ----- methods -----------------------------------------------------------------------------
    async def play(self, p: P.PlayParams) -> dict[str, Any]:
        self._refuse_remote()
        track_id, path, meta = self._resolve(p)
        if not track_id.startswith("file:"):  # a library track: its file must be the one its sidecar describes
            track = Track(track_id, path, meta)
            if not self._library.is_verified(track):  # hashing runs once per file version, off the loop
                await asyncio.to_thread(self._library.verify, track)
        if p.sink:
            self.engine.set_sink(p.sink)
        if p.keep_playing is not None:
            self.keep_playing = p.keep_playing
        if p.queue and self.radio.active:  # a track asked for during the radio: it plays next, crossfaded
            self.radio.put_next(track_id)
            return {"playing": True, "queued": True, "radio_next": True, "track_id": track_id,
                    "prompt": meta.get("prompt"), "sink": self.engine.sink_spec}
        if p.loop is not None:
            self.engine.send({"cmd": "loop", "on": p.loop})
        if self.radio.active:
            self.radio.stop()  # the user picked a track: the radio steps aside
        queued = p.queue and self.engine.worker_state.get("state") != "stopped"
        self._play_command("enqueue" if queued else "play", track_id, path, meta)
        return {"playing": True, "queued": queued, "track_id": track_id, "prompt": meta.get("prompt"),
                "sink": self.engine.sink_spec}

    async def pause(self, _: P.NoParams) -> dict[str, Any]:
        self.engine.send({"cmd": "pause"})
        return self._ok()

    async def resume(self, _: P.NoParams) -> dict[str, Any]:
        self._refuse_remote()
        self.engine.send({"cmd": "resume"})
        return self._ok()

    async def stop(self, _: P.NoParams) -> dict[str, Any]:
        was_radio = self.radio.active
        self.radio.stop()
        self.engine.send({"cmd": "stop"})
        return {"stopped": True, "radio_stopped": was_radio}

    async def next(self, _: P.NoParams) -> dict[str, Any]:
        if self.radio.active:
            return {"skipped": self.radio.skip(), "radio": True}
        if self.engine.worker_state.get("queued"):
            self.engine.send({"cmd": "next"})
            return {"skipped": True, "radio": False}
        raise PlaybackFailed("nothing is queued to play next", hint="Start the radio (:LofiRadio) or play a track.")

    async def seek(self, p: P.SeekParams) -> dict[str, Any]:
        if self.engine.worker_state.get("state") == "stopped":
            raise PlaybackFailed("nothing is playing", hint="Play a track first (:LofiPlay).")
        duration = self.engine.worker_state.get("duration_sec") or 0.0
        if p.position_sec >= duration:
            raise InvalidParams(f"position_sec must be below the track's {duration:g} s", field="position_sec",
                                minimum=0, maximum=duration)
        self.engine.send({"cmd": "seek", "position_sec": p.position_sec})
        return {"position_sec": p.position_sec}

    async def set_volume(self, p: P.VolumeParams) -> dict[str, Any]:
        self.engine.send({"cmd": "volume", "volume": p.volume})
        return {"volume": p.volume}

    async def set_loop(self, p: P.LoopParams) -> dict[str, Any]:
        self.engine.send({"cmd": "loop", "on": p.on})
        return {"loop": p.on}

    async def get_playback(self, _: P.NoParams) -> dict[str, Any]:
        return {**self.engine.state(), "sink_spec": self.engine.sink_spec, "last_error": self.engine.last_error,
                "last_command": self.engine.last_command, "first_sample_at": self.engine.first_sample_at,
                "worker_pid": self.engine.worker_pid}

    async def radio_start(self, p: P.RadioStartParams) -> dict[str, Any]:
        self._refuse_remote()
        if (p.prompt is None) == (p.prompts is None):
            raise InvalidParams("radio_start needs exactly one of prompt or prompts", field="prompt")
        prompts = [p.prompt] if p.prompt is not None else list(p.prompts or [])
        if any(not isinstance(x, str) or not x.strip() or len(x) > 512 for x in prompts):
            raise InvalidParams("every prompt must be 1-512 characters with some words", field="prompts")
        if p.sink:
            self.engine.set_sink(p.sink)
        if p.keep_playing is not None:
            self.keep_playing = p.keep_playing
        if p.crossfade_sec is not None:
            self.engine.send({"cmd": "crossfade", "sec": p.crossfade_sec})
        self.engine.send({"cmd": "loop", "on": True})  # the radio never runs dry
        plan = RadioPlan(prompts=prompts, backend=p.backend, params=dict(p.params or {}),
                         duration_sec=p.duration_sec if p.duration_sec is not None else RADIO_DEFAULT_DURATION_SEC)
        # The first request is validated like any generate: a bad duration or backend is this call's error.
        result = await self.radio.start(plan)
        self.engine.publish()
        return result

    async def radio_stop(self, p: P.RadioStopParams) -> dict[str, Any]:
        was = self.radio.active
        self.radio.stop()
        if not p.keep_playing:
            self.engine.send({"cmd": "stop"})
        self.engine.publish()
        return {"radio": False, "was_running": was}

    async def radio_skip(self, _: P.NoParams) -> dict[str, Any]:
        if not self.radio.active:
            raise PlaybackFailed("the radio is not on", hint="Start it with :LofiRadio.")
        return {"skipped": self.radio.skip()}
