"""The playback worker: a small process that owns the mixer and the sink.

It runs apart from the daemon so that a model generating there (torch and numpy holding
the GIL, both cores busy) cannot starve the audio loop. The daemon talks to it over a pipe:
one JSON command per line on stdin, one JSON event per line on stdout.

Threads: the command reader decodes track files (never the audio loop) and hands ready
voices over a queue; the audio loop renders one block, waits until the sink is at most
``LEAD_SEC`` ahead of real time, writes the block, and applies waiting commands before the
next block, so a command lands within one block of what the sink has received.

Commands: play / enqueue {track_id, path, loopable, info?, stream?, at_boundary?}, pause, resume,
stop {fade_sec?}, next, seek {position_sec}, volume {volume}, loop {on}, crossfade {sec}, sink {spec},
state, quit; streamed sources (``stream.py``): stream {how, track_id, ...}, stream_data, stream_end,
join {track_id, path, after, from_frame}.
Events: state, track (started / looped / ended / stopped / buffering / buffered), applied,
sink_error, track_error, first_sample, limited (the safety limiter acted: at most one per LIMITER_REPORT_SEC).

Every foreign string in an event (a sink's stderr, a file name, an exception's text) is cut
to ``MAX_FOREIGN_CHARS`` here, where it enters, so no event can outgrow what a client reads.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .mixer import BLOCK, QUICK_CROSSFADE_SEC, RATE, Mixer, Voice
from .stream import StreamInbox, StreamVoice, drain_stream_events, file_voice
from .sinks import MAX_FOREIGN_CHARS, Sink, SinkFailed, candidates, cap

LEAD_SEC = 0.1  # audio written ahead of real time: rides out stalls, keeps pause/volume quick
TICK_SEC = 1.0  # a state event at least this often while playing
IDLE_CLOSE_SEC = 2.0  # after stop, keep the sink open briefly (a quick next play reuses it)
MAX_TRACK_SEC = 900  # a longer file is refused rather than filling memory
MIN_RATE, MAX_RATE, MAX_CHANNELS = 8_000, 384_000, 8  # a header outside these is not audio we play
LENGTH_TOLERANCE_SEC = 0.01  # sidecars round durations; a damaged file is off by far more
AUTO_RETRY_WINDOW_SEC = 2.0  # in auto mode, a sink failing this early hands over to the next one
SINK_CONFIRM_SEC = 0.5  # a player that cannot open its device exits sooner; only then is it named
LIMITER_REPORT_SEC = 10.0  # the limiter acting is logged, but at most this often


class Unplayable(ValueError):
    """The file is not playable audio (the only error ``load_voice`` raises); ``damaged``: its
    length is not the one its sidecar recorded."""

    def __init__(self, message: str, *, damaged: bool = False) -> None:
        super().__init__(message)
        self.damaged = damaged


def load_voice(cmd: dict[str, Any]) -> Voice:
    """Decode ``cmd['path']`` into a 48 kHz stereo voice. Every file is untrusted input: its
    header is checked before anything is allocated, and every failure is ``Unplayable``."""
    try:
        return _decode(cmd)
    except Unplayable:
        raise
    except MemoryError:
        raise Unplayable("not enough memory to decode it") from None
    except Exception as exc:  # libsndfile's errors, a truncated stream, a bad header
        raise Unplayable(f"{type(exc).__name__}: {exc}") from None


def _decode(cmd: dict[str, Any]) -> Voice:
    from .. import audio

    path = Path(cmd["path"])
    frames, rate, channels = audio.probe(path)
    if frames <= 0 or rate <= 0 or channels <= 0:
        raise Unplayable("the file holds no audio")
    if not MIN_RATE <= rate <= MAX_RATE or channels > MAX_CHANNELS:
        raise Unplayable(f"the file says {rate} Hz and {channels} channels, which no track has")
    if frames / rate > MAX_TRACK_SEC:
        raise Unplayable(f"the file is {frames / rate:.0f} s long; at most {MAX_TRACK_SEC} s can be played")
    expect = cmd.get("expect_sec")
    if isinstance(expect, (int, float)) and abs(frames / rate - expect) > LENGTH_TOLERANCE_SEC:
        raise Unplayable(f"the file holds {frames / rate:.3f} s of audio, its sidecar says {expect:g} s",
                         damaged=True)
    samples, rate = audio.read(path)  # (channels, frames)
    if isinstance(expect, (int, float)) and abs(samples.shape[1] / rate - expect) > LENGTH_TOLERANCE_SEC:
        raise Unplayable(f"only {samples.shape[1] / rate:.3f} s of the {expect:g} s its sidecar records could "
                         "be decoded", damaged=True)
    if samples.shape[1] == 0:
        raise Unplayable("the file holds no audio")
    if not np.all(np.isfinite(samples)):
        raise Unplayable("the file holds NaN/inf samples")
    if samples.shape[0] == 1:
        samples = np.repeat(samples, 2, axis=0)
    elif samples.shape[0] > 2:
        samples = samples[:2]
    if rate != RATE:
        samples = audio.resample(samples, rate, RATE)
    return Voice(np.ascontiguousarray(samples.T), str(cmd["track_id"]), loopable=bool(cmd.get("loopable")),
                 info=cmd.get("info") or {})


def join(mixer: Mixer, voice: StreamVoice, after: str) -> None:
    """Flow: the continuation goes on where the playing track ``after`` ends; anything else
    (that track no longer plays, or is no stream) falls back to a crossfade at the pass end."""
    current = mixer.current
    if isinstance(current, StreamVoice) and current.track_id == after and mixer.skip_pending:
        mixer.play(voice, fade_sec=QUICK_CROSSFADE_SEC)  # skipped to while it was made: now, from its join
    elif isinstance(current, StreamVoice) and current.track_id == after:
        current.chain(voice.seg)
        mixer.queued = None
    else:
        voice.seg.start = voice.seg.buffer.loop_start = 0
        voice._p = 0
        mixer.enqueue(voice)


def skip(mixer: Mixer) -> None:
    """``next``: the queued voice now; in flow, where the continuation is chained rather than
    queued, the continuation from its join frame, crossfaded as any skip."""
    current = mixer.current
    if mixer.queued is None and isinstance(current, StreamVoice) and current.chained:
        nxt = current.unchain()
        mixer.play(StreamVoice(nxt, loop=mixer.loop), fade_sec=QUICK_CROSSFADE_SEC)
        return
    mixer.next()


def finite(value: Any) -> float:
    """A number from a command, refused when it is not one (NaN, inf, a string)."""
    number = float(value)
    if not np.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number


class Worker:
    def __init__(self, out: BinaryIO, sink_spec: str) -> None:
        self._out = out
        self._out_lock = threading.Lock()
        self.mixer = Mixer()
        self.sink_spec = sink_spec
        self.sink: Sink | None = None
        self._commands: queue.SimpleQueue[tuple[dict[str, Any], Voice | None]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._quit = False
        self.frames_sent = 0  # frames the current sink has received
        self._sink_frame0 = 0  # the mixer's frame count when the current sink got its first frame
        self._auto_errors: list[SinkFailed] = []  # auto: the sinks that died at once, this time round
        self._told_confirmed = False
        self._t0: float | None = None
        self._first_sample_pending = False
        self.underruns = 0
        self._last_tick = 0.0
        self._idle_since: float | None = None
        self.streams = StreamInbox()
        self._limiter_told = (0, -LIMITER_REPORT_SEC)  # (samples limited, when) at the last report

    # ----- output ---------------------------------------------------------------------------
    def emit(self, event: str, **data: Any) -> None:
        line = json.dumps({"event": event, **data}, separators=(",", ":")).encode() + b"\n"
        with self._out_lock:
            try:
                self._out.write(line)
                self._out.flush()
            except (BrokenPipeError, OSError, ValueError):
                self._quit = True  # the daemon is gone

    def snapshot(self) -> dict[str, Any]:
        m = self.mixer
        voice = m.current
        return {
            "state": m.state,
            "track_id": voice.track_id if voice else None,
            "position_sec": round(voice.pos / RATE, 3) if voice else 0.0,
            "duration_sec": round(voice.n / RATE, 3) if voice else 0.0,
            # Still arriving (a bridge, a track playing while it decodes): duration_sec is what has
            # arrived so far, not the track's length; clients show none.
            "streaming": voice is not None and not getattr(voice, "complete", True),
            "volume": round(m.volume.target * 100),
            "loop": m.loop,
            "queued": m.queued.track_id if m.queued else None,
            "skip_pending": m.skip_pending,
            "sink": self.sink.name if self._sink_confirmed() else None,
            "underruns": self.underruns,
            "buffering": bool(getattr(voice, "buffering", False)),
            "frame": m.frames_out,
        }

    # ----- commands -------------------------------------------------------------------------
    def read_commands(self, stream: BinaryIO) -> None:
        """Reader thread: parse, decode track files here, hand over ready commands."""
        for raw in stream:
            try:
                cmd = json.loads(raw)
                if not isinstance(cmd, dict) or not isinstance(cmd.get("cmd"), str):
                    raise ValueError("a command is a JSON object with a string 'cmd'")
            except ValueError as exc:
                self.emit("command_error", message=cap(str(exc)))
                continue
            try:
                if self.streams.take(cmd):  # stream chunks go straight into their buffer
                    continue
            except ValueError as exc:
                self.emit("command_error", message=f"bad stream chunk: {exc}")
                continue
            voice: Any = None
            if cmd["cmd"] == "stream":
                voice = self.streams.open(cmd)
            elif cmd["cmd"] in ("play", "enqueue", "join"):
                try:
                    voice = load_voice(cmd)
                    if cmd.get("stream") or cmd["cmd"] == "join":
                        voice = file_voice(voice.samples, cmd)
                except Unplayable as exc:  # unreadable, truncated, not audio: say so, play on
                    path = cap(str(cmd.get("path")), MAX_FOREIGN_CHARS // 2)
                    self.emit("track_error", track_id=cap(str(cmd.get("track_id")), 200), path=path,
                              damaged=exc.damaged, message=cap(f"cannot play {path}: {exc}"))
                    continue
                except (ValueError, TypeError) as exc:  # a stream command's own fields
                    self.emit("track_error", track_id=cap(str(cmd.get("track_id")), 200), path=None,
                              message=cap(f"cannot stream {cmd.get('track_id')}: {exc}"))
                    continue
            self._commands.put((cmd, voice))
            self._wake.set()
        self._commands.put(({"cmd": "quit"}, None))
        self._wake.set()

    def apply_commands(self) -> None:
        while True:
            try:
                cmd, voice = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                self.apply(cmd, voice)
            except (TypeError, ValueError, OverflowError) as exc:  # a malformed value: say so, play on
                self.emit("command_error", message=cap(f"{cmd.get('cmd')!s}: {type(exc).__name__}: {exc}"))

    def apply(self, cmd: dict[str, Any], voice: Voice | None) -> None:
        m = self.mixer
        name = cmd["cmd"]
        received = self.frames_sent
        if name == "stream":
            name = "enqueue" if cmd.get("how") == "enqueue" else "play"
        if name == "join" and voice is not None:
            join(m, voice, str(cmd.get("after")))
        elif name == "play" and voice is not None:
            m.play(voice)
        elif name == "enqueue" and voice is not None:
            current = m.current
            if cmd.get("at_boundary") and isinstance(current, StreamVoice) and current.unheard:
                m.play(voice, fade_sec=0.0)  # a bridge not heard yet: the track itself is the first sound
            else:
                m.enqueue(voice)
                if cmd.get("at_boundary") and m.queued is voice and isinstance(current, StreamVoice):
                    current.hand_over_at_boundary(m.crossfade_frames)
        elif name == "pause":
            m.set_paused(True)
        elif name == "resume":
            m.set_paused(False)
        elif name == "stop":
            m.stop(float(cmd.get("fade_sec") or 0.0))
        elif name == "next":
            skip(m)
        elif name == "seek":
            m.seek(finite(cmd.get("position_sec", 0.0)))
        elif name == "volume":
            m.set_volume(finite(cmd.get("volume", 100)) / 100.0)
        elif name == "loop":
            m.set_loop(bool(cmd.get("on", True)))
        elif name == "crossfade":
            m.set_crossfade(min(60.0, finite(cmd.get("sec", 4.0))))
        elif name == "sink":
            self.sink_spec = str(cmd.get("spec") or "auto")
            self._close_sink()
        elif name == "quit":
            self._quit = True
        elif name != "state":
            self.emit("command_error", message=f"unknown command {name!r}")
            return
        # In the sink's own frame count: what it had received, and where the change starts.
        self.emit("applied", cmd=name, id=cmd.get("id"), received_frame=received,
                  applied_frame=m.frames_out - self._sink_frame0)
        self.emit_events()
        self.emit("state", **self.snapshot())

    def report_limiter(self, now: float) -> None:
        """The limiter acting means something upstream was too loud: say so, rate-limited."""
        told_samples, told_at = self._limiter_told
        samples = self.mixer.limited_samples
        if samples > told_samples and now - told_at >= LIMITER_REPORT_SEC:
            self.emit("limited", samples=samples - told_samples, peak=round(self.mixer.limited_peak, 3),
                      volume=round(self.mixer.volume.target * 100))
            self._limiter_told = (samples, now)
            self.mixer.limited_peak = 0.0

    def emit_events(self) -> int:
        """Send the mixer's events; returns how many changed what clients see (a loop does not)."""
        m = self.mixer
        events = m.drain_events() + drain_stream_events([m.current, m.queued, *(v for v, _ in m.outgoing)])
        for event in events:
            self.emit("track", **event)
        return sum(1 for e in events if e["kind"] != "looped")

    # ----- sink -----------------------------------------------------------------------------
    def _sink_confirmed(self) -> bool:
        """A pipe takes the first blocks before the player has opened its device: the state
        names the sink (and clients say "playing") only once it has lived SINK_CONFIRM_SEC."""
        sink = self.sink
        started = getattr(sink, "started_at", None)
        return sink is not None and (started is None or time.monotonic() - started >= SINK_CONFIRM_SEC)

    def _open_sink(self) -> bool:
        errors: list[SinkFailed] = []
        self._auto_errors = []
        try:
            options = candidates(self.sink_spec)
        except (SinkFailed, ValueError) as exc:
            errors.append(exc if isinstance(exc, SinkFailed) else SinkFailed(self.sink_spec, str(exc)))
            options = []
        for sink in options:
            try:
                sink.open()
            except SinkFailed as exc:
                errors.append(exc)
                continue
            self.sink = sink
            self.frames_sent = 0
            self._sink_frame0 = self.mixer.frames_out
            self._t0 = None
            self._first_sample_pending = True
            return True
        self._sink_error(errors)
        return False

    def _sink_error(self, errors: list[SinkFailed]) -> None:
        if not errors:
            failure = SinkFailed(self.sink_spec or "auto", "no audio output found: no sounddevice output, "
                                 "and none of pw-cat, paplay, aplay, mpv, ffplay is installed",
                                 hint="Install mpv (or pipewire / pulseaudio tools), or set player.sink.")
        else:
            failure = errors[-1]
            if len(errors) > 1:
                tried = "; ".join(e.message for e in errors)
                failure = SinkFailed(failure.sink, f"no audio output works here: {tried}", stderr=failure.stderr,
                                     hint=failure.hint)
        self.mixer.stop()
        self.mixer.outgoing.clear()
        self.mixer.drain_events()
        self.emit("sink_error", **failure.to_dict(), tried=[e.sink for e in errors])
        self.emit("state", **self.snapshot())
        self._auto_errors = []

    def _close_sink(self) -> None:
        sink, self.sink = self.sink, None
        if sink is not None:
            sink.close()

    def _write(self, block: np.ndarray) -> None:
        assert self.sink is not None
        try:
            self.sink.write(block)
        except SinkFailed as exc:
            failed = self.sink
            self.sink = None
            failed.close()
            young = time.monotonic() - getattr(failed, "started_at", 0.0) < AUTO_RETRY_WINDOW_SEC
            if self.sink_spec.strip() in ("", "auto") and young:
                self._fall_through(failed, exc, block)
                return
            self._sink_error([exc])
            return
        if self._first_sample_pending:
            self._first_sample_pending = False
            self.emit("first_sample", t=time.monotonic(), sink=self.sink.name)
        self.frames_sent += block.shape[0]

    def _fall_through(self, failed: Sink, first: SinkFailed, block: np.ndarray) -> None:
        """auto: the sink died at once (no device behind it); try the ones after it."""
        options = candidates("auto")
        names = [s.name for s in options]
        later = options[names.index(failed.name) + 1:] if failed.name in names else []
        self._auto_errors.append(first)
        errors = self._auto_errors
        for sink in later:
            try:
                sink.open()
                sink.write(block)
            except SinkFailed as exc:
                sink.close()
                errors.append(exc)
                continue
            self.sink = sink
            self.frames_sent = block.shape[0]
            self._sink_frame0 = self.mixer.frames_out - block.shape[0]
            self._t0 = None
            return
        self._sink_error(errors)

    # ----- the audio loop -------------------------------------------------------------------
    def _pace(self) -> None:
        """Wait until the sink is at most LEAD_SEC ahead of real time; count late blocks."""
        speed = self.sink.speed if self.sink else 1.0
        if speed <= 0:
            return
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
            return
        while True:
            ahead = self.frames_sent / (RATE * speed) - (time.monotonic() - self._t0)
            if ahead <= LEAD_SEC:
                break
            if self._wake.wait(ahead - LEAD_SEC):
                self._wake.clear()
        if ahead < 0:  # the sink has played everything it got: an underrun (a late block)
            self.underruns += 1
            self._t0 = time.monotonic() - self.frames_sent / (RATE * speed)

    def run(self) -> None:
        while not self._quit:
            self.apply_commands()
            if self._quit:
                break
            if not self.mixer.active:
                self._idle()
                continue
            self._idle_since = None
            if self.sink is None and not self._open_sink():
                continue
            block = self.mixer.render(BLOCK)
            changed = self.emit_events()
            self.report_limiter(time.monotonic())
            self._pace()
            self._write(block)
            now = time.monotonic()
            confirmed = self._sink_confirmed()
            if confirmed != self._told_confirmed:
                self._told_confirmed = confirmed
                changed += 1
            if changed or now - self._last_tick >= TICK_SEC:
                self._last_tick = now
                self.emit("state", **self.snapshot())
        self._close_sink()

    def _idle(self) -> None:
        now = time.monotonic()
        if self._idle_since is None:
            self._idle_since = now
            self.emit("state", **self.snapshot())
        if self.sink is not None and now - self._idle_since >= IDLE_CLOSE_SEC:
            self._close_sink()
        self._wake.wait(0.5)
        self._wake.clear()


def main() -> None:
    import signal

    # Ctrl-C in a terminal reaches the whole process group: the daemon decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # stdout is the event channel: keep a private handle, send stray prints to stderr.
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    worker = Worker(out, os.environ.get("LOFI_PLAYER_SINK", "auto"))
    import importlib

    importlib.import_module("soundfile")  # audio.py's lazy import, done now rather than at the first play

    threading.Thread(target=worker.read_commands, args=(sys.stdin.buffer,), daemon=True,
                     name="playback-commands").start()
    worker.emit("ready", pid=os.getpid())
    try:
        worker.run()
    finally:
        worker._close_sink()
    os._exit(0)


if __name__ == "__main__":
    main()
