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
from .bridge import ProceduralBridge
from .engine import PlaybackEngine
from .live import LiveWindows
from .moods import nearest
from .radio import BridgeChoice, Radio, RadioPlan
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
        self._capabilities: Callable[[str | None], tuple[str, Any]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._bridge: ProceduralBridge | None = None
        self._autoplay: dict[str, str] = {}  # generate(play=true): track id -> "waiting" | "streaming"
        self.radio = Radio(self.engine, submit=self._generate, cancel=lambda tid: self._cancel and self._cancel(tid),
                           play=self._radio_play, start_bridge=self._start_bridge, stop_bridge=self._stop_bridge,
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
                self._on_autoplay_event(method, params)
        return observed

    def bind(self, *, submit: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
             cancel: Callable[[str], Any],
             capabilities: Callable[[str | None], tuple[str, Any]] | None = None) -> None:
        """``capabilities(backend or None)`` -> (canonical name, Capabilities): what the radio
        may ask of a backend (continue audio) and whether it needs a bridge."""
        self._submit, self._cancel, self._capabilities = submit, cancel, capabilities

    def autoplay(self, track_id: str) -> None:
        """``generate`` with ``play``: play the track as soon as it can be heard — while it
        decodes (backends that decode in windows), else when it is done. The radio, when on,
        steps aside as for ``play``."""
        self._refuse_remote()
        self._loop = asyncio.get_running_loop()
        if self.radio.active:
            self.radio.stop()
        self._autoplay[track_id] = "waiting"

    def _on_autoplay_event(self, method: str, params: dict[str, Any]) -> None:
        track_id = params.get("track_id")
        how = self._autoplay.get(track_id or "")
        if how is None or method not in ("generation_complete", "generation_error", "generation_cancelled"):
            return
        del self._autoplay[track_id]
        if method == "generation_complete" and how != "streaming" and not self.radio.active:
            track = self._library.get(track_id)
            self._play_command("play", track.track_id, track.path, track.meta)
        elif method != "generation_complete" and how == "streaming":
            self.engine.send({"cmd": "stop"})  # (live.py aborted the stream; this ends its fade too)

    def live_windows(self, track_id: str, prompt: str | None = None) -> LiveWindows | None:
        """For the job thread: where a windowed decode of ``track_id`` goes, should it be played
        while it decodes (asked again at every window, on the loop)."""
        loop = self._loop
        if loop is not None and track_id in self._autoplay and not self._remote:
            def started() -> None:
                if track_id in self._autoplay:
                    self._autoplay[track_id] = "streaming"
            info = {"prompt": prompt, "backend": None}
            self.engine.tracks[track_id] = info
            return LiveWindows(track_id, self.engine.send, loop, info=info,
                               wanted=lambda: track_id in self._autoplay and not self.radio.active,
                               expected_frames=0, on_start=started)
        if loop is None or self._remote or not self.radio.active:
            return None
        info = {"prompt": self.radio.pending_prompt, "backend": None}
        self.engine.tracks[track_id] = info
        duration = self.radio.plan.duration_sec if self.radio.plan else 30.0
        return LiveWindows(track_id, self.engine.send, loop, wanted=lambda: self.radio.wants_live(track_id),
                           info=info, expected_frames=int(duration * 48_000) + 48_000,
                           on_start=lambda: self.radio.stream_started(track_id))

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
        d.register("radio_set_prompt", P.RadioSetPromptParams, self.radio_set_prompt)

    async def close(self) -> None:
        self.radio.stop()
        self._stop_bridge()
        await self.engine.close()

    # ----- helpers -----------------------------------------------------------------------------
    def check_can_play(self) -> None:
        self._refuse_remote()

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

    def _radio_play(self, track_id: str, how: str, *, at_boundary: bool = False, after: str | None = None) -> None:
        """Radio tracks play as stream voices (stream.py): they can hand over on a bar line and
        take a continuation. ``join``: go on from ``join_frame`` where ``after`` ends."""
        track = self._library.get(track_id)
        meta = track.meta
        info = {"prompt": meta.get("prompt") or track.path.name, "backend": meta.get("backend")}
        self.engine.tracks[track_id] = info
        cmd: dict[str, Any] = {"cmd": how, "track_id": track_id, "path": str(track.path), "stream": True,
                               "loopable": meta.get("loopable") is True, "info": info, "at_boundary": at_boundary}
        if isinstance(meta.get("duration_sec"), (int, float)):
            cmd["expect_sec"] = meta["duration_sec"]  # the worker refuses a file of another length
        bpm = meta.get("bpm")
        if isinstance(bpm, (int, float)) and not isinstance(bpm, bool) and 20 <= bpm <= 400:
            cmd["bar_frames"] = 4 * 60.0 / bpm * 48_000
        if how == "join":
            join = meta.get("join_frame")
            if meta.get("continues") != after or not isinstance(join, int) or join < 0:
                cmd["cmd"] = "enqueue"  # not a continuation of what plays: crossfade as in shuffle
            else:
                cmd.update(after=after, from_frame=join)
                lead = meta.get("lead_in_frames")  # the prefix's end leads into the new part (stream.py)
                if isinstance(lead, int) and not isinstance(lead, bool) and 0 < lead <= join:
                    cmd["lead_in"] = lead
        self.engine.send(cmd)

    def _start_bridge(self, plan: RadioPlan, first_seed: int | None = None) -> BridgeChoice:
        """Something to hear within a second while the first track is made (docs/radio.md).
        ``first_seed``: the seed of the radio's first job (a procedural bridge plays its song)."""
        backend = plan.backend
        if self._capabilities is not None:
            backend, _caps = self._capabilities(plan.backend)
        prompt = plan.prompt_at(0)
        if plan.bridge == "none":
            return BridgeChoice("none", "asked for no bridge")
        if plan.bridge in ("auto", "library"):
            found = self._nearest_library(prompt)
            if found is not None:
                track, score = found
                self._radio_play(track.track_id, "play")
                return BridgeChoice("library", "the library track whose prompt is nearest", track.track_id,
                                    track.meta.get("prompt"), score)
            if plan.bridge == "library":
                return BridgeChoice("none", "no library track shares a word with the prompt")
        # The procedural backend's first track is one whole render (1-2 s for 30 s on a busy
        # machine): its bridge is that track's own song, the same seed at its tempo, so it is
        # in time and in key with what takes over on its bar line.
        same_song = backend == "procedural" and first_seed is not None
        loop = self._loop or asyncio.get_running_loop()
        bridge = ProceduralBridge(prompt, lambda cmd: loop.call_soon_threadsafe(self.engine.send, cmd),
                                  seed=first_seed if same_song else None,
                                  duration_sec=plan.duration_sec if same_song else None)
        self._stop_bridge()
        self._bridge = bridge
        self.engine.tracks[bridge.track_id] = bridge.info()
        bridge.start()
        if same_song:
            return BridgeChoice("procedural", "the first track's own song (its seed, key and tempo), rendered as "
                                "it plays until that track takes over on a bar line", bridge.track_id, prompt,
                                same_song=True, seed=bridge.seed, bpm=bridge.bpm)
        return BridgeChoice("procedural", "procedural music steered by the prompt, rendered as it plays",
                            bridge.track_id, prompt, seed=bridge.seed, bpm=bridge.bpm)

    def _stop_bridge(self) -> None:
        bridge, self._bridge = self._bridge, None
        if bridge is not None:
            bridge.stop()

    def _nearest_library(self, prompt: str) -> tuple[Any, float] | None:
        tracks = [t for t in self._library.list() if t.path.is_file() and t.meta.get("prompt")]
        found = nearest(prompt, [t.meta["prompt"] for t in tracks])
        if found is None:
            return None
        index, score = found
        return tracks[index], score

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
        prompts = _check_prompts(p.prompt, p.prompts, "radio_start")
        self._loop = asyncio.get_running_loop()
        mode = self._resolve_mode(p.mode, p.backend)
        if p.sink:
            self.engine.set_sink(p.sink)
        if p.keep_playing is not None:
            self.keep_playing = p.keep_playing
        if p.crossfade_sec is not None:
            self.engine.send({"cmd": "crossfade", "sec": p.crossfade_sec})
        self.engine.send({"cmd": "loop", "on": True})  # the radio never runs dry
        plan = RadioPlan(prompts=prompts, backend=p.backend, params=dict(p.params or {}), bridge=p.bridge, mode=mode,
                         duration_sec=p.duration_sec if p.duration_sec is not None else RADIO_DEFAULT_DURATION_SEC)
        # The first request is validated like any generate: a bad duration or backend is this call's error.
        result = await self.radio.start(plan)
        self.engine.publish()
        return result

    def _resolve_mode(self, asked: str | None, backend: str | None) -> str:
        """flow where the backend can continue audio (unless shuffle is asked), else shuffle."""
        if self._capabilities is None:
            can = False
            name = backend or "the default backend"
        else:
            name, caps = self._capabilities(backend)  # INVALID_BACKEND for an unknown name
            can = bool(getattr(caps, "continues_audio", False))
        if asked == "flow" and not can:
            raise InvalidParams(f"backend {name} cannot continue audio, so the radio cannot flow", field="mode",
                                hint="Use mode \"shuffle\" (tracks crossfade), or a backend that continues audio.")
        return asked or ("flow" if can else "shuffle")

    async def radio_set_prompt(self, p: P.RadioSetPromptParams) -> dict[str, Any]:
        if not self.radio.active:
            raise PlaybackFailed("the radio is not on", hint="Start it with :LofiRadio <prompt>.")
        prompts = _check_prompts(p.prompt, p.prompts, "radio_set_prompt")
        result = await self.radio.set_prompts(prompts)
        return {"radio": True, **result}

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


def _check_prompts(prompt: str | None, prompts: list[str] | None, method: str) -> list[str]:
    if (prompt is None) == (prompts is None):
        raise InvalidParams(f"{method} needs exactly one of prompt or prompts", field="prompt")
    out = [prompt] if prompt is not None else list(prompts or [])
    if any(not isinstance(x, str) or not x.strip() or len(x) > 512 for x in out):
        raise InvalidParams("every prompt must be 1-512 characters with some words", field="prompts")
    return out
