"""The daemon's side of playback: the worker process, its commands, the state clients see.

The worker (``playback/worker.py``) is started on the first playback command, fed one JSON
command per line, and read by a thread whose events hop to the event loop. Everything a
client learns goes out as ``playback_state`` (on every change, and once a second while
playing) or ``playback_error``. A worker that dies is reported and restarted by the next
command; the daemon never goes down with it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import threading
from typing import Any, Callable

log = logging.getLogger(__name__)

Notify = Callable[[str, dict[str, Any]], None]
Listener = Callable[[dict[str, Any]], None]

STOPPED = {"state": "stopped", "track_id": None, "position_sec": 0.0, "duration_sec": 0.0, "volume": 100,
           "loop": True, "queued": None, "skip_pending": False, "sink": None, "underruns": 0,
           "buffering": False, "streaming": False}


class PlaybackEngine:
    def __init__(self, notify: Notify, *, sink_spec: str, env: dict[str, str] | None = None) -> None:
        self._notify = notify
        self.sink_spec = sink_spec
        self._env = env
        self._proc: subprocess.Popen[bytes] | None = None
        self._write_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.worker_state: dict[str, Any] = dict(STOPPED)
        self.tracks: dict[str, dict[str, Any]] = {}  # what we told the worker about each track id
        self.listeners: list[Listener] = []
        self.extra_state: Callable[[], dict[str, Any]] = lambda: {"radio": False, "next": None}
        self.last_error: dict[str, Any] | None = None
        self.first_sample_at: float | None = None
        self.last_command: dict[str, Any] | None = None  # {cmd, id, received_frame, applied_frame}
        self._volume = 100
        self._next_id = 0
        self._published: dict[str, Any] | None = None
        self._loop_on = True
        self._crossfade: float | None = None

    @property
    def worker_pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    # ----- the worker process ----------------------------------------------------------------
    def _spawn(self) -> None:
        self._loop = asyncio.get_running_loop()
        env = dict(self._env if self._env is not None else os.environ)
        env["LOFI_PLAYER_SINK"] = self.sink_spec
        proc = subprocess.Popen([sys.executable, "-m", "lofi_daemon.playback.worker"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, env=env)
        self._proc = proc
        threading.Thread(target=self._read_events, args=(proc,), daemon=True, name="lofi-playback-events").start()
        # A new worker starts from defaults: give it what the old one had.
        self._send_raw({"cmd": "volume", "volume": self._volume})
        self._send_raw({"cmd": "loop", "on": self._loop_on})
        if self._crossfade is not None:
            self._send_raw({"cmd": "crossfade", "sec": self._crossfade})
        log.info("playback worker started (pid %d, sink %r)", proc.pid, self.sink_spec)

    def _read_events(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None and self._loop is not None
        for raw in proc.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                log.warning("playback worker: unreadable event %.200r", raw)
                continue
            self._loop.call_soon_threadsafe(self._on_event, proc, event)
        code = proc.wait()
        self._loop.call_soon_threadsafe(self._on_exit, proc, code)

    def _send_raw(self, cmd: dict[str, Any], proc: subprocess.Popen[bytes] | None = None) -> bool:
        proc = proc or self._proc
        if proc is None or proc.stdin is None:
            return False
        with self._write_lock:
            try:
                proc.stdin.write(json.dumps(cmd).encode() + b"\n")
                proc.stdin.flush()
                return True
            except (BrokenPipeError, OSError, ValueError):
                return False

    def prewarm(self) -> None:
        """Start the worker now (it imports numpy and soundfile), so a later play is quick."""
        if self._proc is None or self._proc.poll() is not None:
            self._spawn()

    def send(self, cmd: dict[str, Any]) -> None:
        """Send a command, starting (or restarting) the worker when needed."""
        self._next_id += 1
        cmd = {**cmd, "id": self._next_id}  # echoed in the worker's "applied" event
        if cmd["cmd"] == "volume":
            self._volume = cmd["volume"]
        elif cmd["cmd"] == "loop":
            self._loop_on = cmd["on"]
        elif cmd["cmd"] == "crossfade":
            self._crossfade = cmd["sec"]
        if self._proc is None or self._proc.poll() is not None:
            if cmd["cmd"] in ("pause", "resume", "stop", "next", "seek", "state", "stream_data", "stream_end"):
                return  # nothing is playing in a worker that does not exist
            self._spawn()
            if cmd["cmd"] in ("volume", "loop", "crossfade"):
                return  # the fresh worker was just told
        if not self._send_raw(cmd):
            self._spawn()
            self._send_raw(cmd)

    def set_sink(self, spec: str) -> None:
        if spec != self.sink_spec:
            self.sink_spec = spec
            if self._proc is not None and self._proc.poll() is None:
                self._send_raw({"cmd": "sink", "spec": spec})

    async def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        self._send_raw({"cmd": "stop"}, proc)
        self._send_raw({"cmd": "quit"}, proc)
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.run_in_executor(None, proc.wait), timeout=3)
        except asyncio.TimeoutError:
            proc.kill()

    # ----- events (on the loop) --------------------------------------------------------------
    def _on_event(self, proc: subprocess.Popen[bytes], event: dict[str, Any]) -> None:
        if proc is not self._proc:
            return  # a worker we already replaced
        kind = event.pop("event", None)
        if kind == "state":
            self.worker_state = {k: event.get(k, v) for k, v in STOPPED.items()}
            self.publish()
        elif kind == "sink_error":
            self.last_error = event
            # The worker stopped; its own state follows, but whoever hears the error sees it now.
            self.worker_state = {**self.worker_state, "state": "stopped", "track_id": None, "queued": None,
                                 "sink": None, "position_sec": 0.0, "duration_sec": 0.0}
            self._notify("playback_error", {"code": "PLAYBACK_FAILED", **event})
        elif kind == "track_error":
            damaged = bool(event.pop("damaged", False))  # its length is not what its sidecar says
            self._notify("playback_error", {"code": "TRACK_DAMAGED" if damaged else "PLAYBACK_FAILED", "sink": None,
                                            "hint": "The file is not playable audio; generate it again.", **event})
        elif kind == "applied":
            self.last_command = event
        elif kind == "first_sample":
            self.first_sample_at = event.get("t")
        elif kind == "limited":  # the worker sends at most one every LIMITER_REPORT_SEC
            log.warning("playback: the safety limiter held %s samples under full scale (peak %s, volume %s%%)",
                        event.get("samples"), event.get("peak"), event.get("volume"))
        for listener in list(self.listeners):
            try:
                listener({"event": kind, **event})
            except Exception:
                log.exception("a playback listener failed")

    def _on_exit(self, proc: subprocess.Popen[bytes], code: int) -> None:
        if proc is not self._proc:
            return
        self._proc = None
        was_playing = self.worker_state.get("state") != "stopped"
        self.worker_state = {**STOPPED, "volume": self._volume, "loop": self._loop_on}
        if was_playing or code != 0:
            log.error("playback worker exited with %s", code)
            self._notify("playback_error", {"code": "PLAYBACK_FAILED", "sink": None,
                                            "message": f"the playback worker exited (code {code})",
                                            "hint": "Play again; see the daemon log if it repeats."})
        self.publish()

    # ----- what clients see ------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        w = self.worker_state
        info = self.tracks.get(w.get("track_id") or "", {})
        return {
            "state": w["state"],
            "track_id": w["track_id"],
            "prompt": info.get("prompt"),
            "backend": info.get("backend"),
            "position_sec": w["position_sec"],
            "duration_sec": w["duration_sec"],
            "streaming": w["streaming"],  # duration_sec is only what has arrived so far
            "volume": w["volume"],
            "loop": w["loop"],
            **self.extra_state(),
            "queued": w["queued"],
            "sink": w["sink"],
            "underruns": w["underruns"],
            "buffering": w["buffering"],  # a streamed track waits for its decode (stream.py)
        }

    def publish(self) -> None:
        state = self.state()
        if state != self._published:  # the same state twice in a row says nothing new
            self._published = state
            self._notify("playback_state", state)
