"""Sinks: where the mixer's PCM goes (48 kHz, stereo, float32 little-endian, interleaved).

    Sink                 open() / write(block) / close(); raises SinkFailed
    ├── PortAudioSink    sounddevice, when it imports and finds an output device
    ├── PipeSink         a player reading raw PCM on stdin: pw-cat, paplay, aplay, mpv, ffplay,
    │                    or any command the user names
    └── CaptureSink      a file that records exactly what the mixer emitted (tests, benchmarks)

A spec string picks one (``player.sink``): ``auto``; a known name, optionally followed by
extra arguments (``mpv --ao=null``); ``capture PATH [SPEED]`` (SPEED 1 = real time, 0 = as
fast as the mixer runs); anything else is a command that reads raw f32le 48 kHz stereo on
stdin. A sink that cannot start, exits, or stops reading for ``HANG_SEC`` raises SinkFailed
with its own last stderr line and a hint naming what was tried.

A sink is foreign: its stderr is read in small chunks and every line kept is cut to
``MAX_FOREIGN_CHARS`` as it arrives (an 8 MB line is never held whole), and a player runs in
a process group of its own, which is ended as a whole (a wrapper's children go with it).
"""

from __future__ import annotations

import collections
import os
import platform
import re
import select
import shlex
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np

from .mixer import CHANNELS, RATE

HANG_SEC = 3.0  # a sink that accepts nothing for this long is hung
PICK_HINT = "Pick another output with player.sink (auto, pw-cat, paplay, aplay, mpv, ffplay, sounddevice)."

# How each known player reads raw f32le 48 kHz stereo on stdin, with a small buffer of its own.
PLAYERS: dict[str, list[str]] = {
    "pw-cat": ["--playback", "--format", "f32", "--rate", str(RATE), "--channels", str(CHANNELS),
               "--latency", "50ms", "-"],
    "paplay": ["--raw", "--format=float32le", f"--rate={RATE}", f"--channels={CHANNELS}", "--latency-msec=60"],
    "aplay": ["-q", "-t", "raw", "-f", "FLOAT_LE", "-r", str(RATE), "-c", str(CHANNELS), "--buffer-time=100000"],
    "mpv": ["--no-config", "--no-video", "--no-terminal", "--msg-level=all=error", "--cache=no",
            "--audio-buffer=0.1", "--demuxer=rawaudio", "--demuxer-rawaudio-format=floatle",
            f"--demuxer-rawaudio-rate={RATE}", "--demuxer-rawaudio-channels=stereo", "-"],
    "ffplay": ["-nodisp", "-autoexit", "-loglevel", "error", "-fflags", "nobuffer", "-f", "f32le",
               "-ar", str(RATE), "-ch_layout", "stereo", "-i", "-"],
}
AUTO_ORDER_LINUX = ["sounddevice", "pw-cat", "paplay", "aplay", "mpv", "ffplay"]
AUTO_ORDER_MAC = ["sounddevice", "mpv", "ffplay"]
MAX_FOREIGN_CHARS = 2048  # a foreign string (stderr, a file name, an exception's text) in any message
STDERR_LINES = 20  # the last lines of a sink's stderr kept to explain a failure
CLOSE_WAIT_SEC = 1.0  # a player drains what it holds (< 0.2 s) after its stdin closes

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def cap(text: str, limit: int = MAX_FOREIGN_CHARS) -> str:
    """``text`` cut to ``limit`` characters (saying how long it was), control characters shown
    as U+FFFD: a foreign string may enter a message, but never whole and never raw."""
    text = _CONTROL.sub("\ufffd", text)
    if len(text) <= limit:
        return text
    note = f"… ({len(text)} characters, cut)"
    return text[:max(0, limit - len(note))] + note


class SinkFailed(Exception):
    def __init__(self, sink: str, message: str, *, stderr: str = "", hint: str = PICK_HINT) -> None:
        super().__init__(message)
        self.sink = cap(sink, 200)
        self.message = cap(message)
        self.stderr = cap(stderr)
        self.hint = hint

    def to_dict(self) -> dict[str, str]:
        """What playback_error carries: the sink's own words once, inside ``message``."""
        return {"sink": self.sink, "message": self.message, "hint": self.hint}


class Sink:
    name = "sink"
    speed = 1.0  # how fast it consumes audio (0: as fast as it is written)

    def open(self) -> None: ...

    def write(self, block: np.ndarray) -> None:
        raise NotImplementedError

    def close(self) -> None: ...


class CaptureSink(Sink):
    """Appends every block, exactly as mixed, to a raw f32le file (flushed per block)."""

    def __init__(self, path: str, speed: float = 1.0) -> None:
        self.name = "capture"
        self.path = Path(path)
        self.speed = speed
        self._file = None

    def open(self) -> None:
        try:
            self._file = open(self.path, "ab", buffering=0)
        except OSError as exc:
            raise SinkFailed("capture", f"cannot write {self.path}: {exc.strerror}") from exc

    def write(self, block: np.ndarray) -> None:
        assert self._file is not None
        self._file.write(np.ascontiguousarray(block, dtype="<f4").tobytes())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class PipeSink(Sink):
    """A player process fed on stdin. Its stderr is kept (last lines) to explain a failure."""

    def __init__(self, name: str, argv: list[str]) -> None:
        self.name = cap(name, 200)
        self.argv = argv
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self.started_at = 0.0

    def open(self) -> None:
        exe = shutil.which(self.argv[0])
        if exe is None:
            raise SinkFailed(self.name, f"{self.argv[0]} is not installed (not found on PATH)",
                             hint=f"Install {self.argv[0]} or pick another output with player.sink.")
        try:
            self._proc = subprocess.Popen([exe, *self.argv[1:]], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            raise SinkFailed(self.name, f"cannot start {self.argv[0]}: {exc.strerror}") from exc
        self.started_at = time.monotonic()
        assert self._proc.stdin is not None and self._proc.stderr is not None
        os.set_blocking(self._proc.stdin.fileno(), False)
        threading.Thread(target=self._read_stderr, args=(self._proc.stderr,), daemon=True,
                         name=f"sink-stderr-{self.name}").start()

    def _read_stderr(self, stream) -> None:  # type: ignore[no-untyped-def]
        """Keep the last lines, each at most MAX_FOREIGN_CHARS: chunks, never a whole line."""
        fd = stream.fileno()
        line = bytearray()
        overflow = 0  # bytes of the current line beyond what is kept
        limit = MAX_FOREIGN_CHARS * 4  # UTF-8: up to 4 bytes a character
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            *done, rest = chunk.split(b"\n")
            for piece in done:
                self._keep_line(line, piece, overflow, limit)
                line, overflow = bytearray(), 0
            room = limit - len(line)
            line += rest[:max(0, room)]
            overflow += max(0, len(rest) - max(0, room))
        self._keep_line(line, b"", overflow, limit)
        stream.close()

    def _keep_line(self, head: bytearray, piece: bytes, overflow: int, limit: int) -> None:
        room = limit - len(head)
        kept = bytes(head) + piece[:max(0, room)]
        overflow += max(0, len(piece) - max(0, room))
        text = kept.decode("utf-8", "replace").strip()
        if overflow:
            text += f"… ({overflow} more bytes on this line, not kept)"
        if text:
            self._stderr.append(cap(text))

    def last_stderr(self) -> str:
        """The sink's own explanation: its last line that reads like an error, else its last line."""
        lines = list(self._stderr)
        for line in reversed(lines):
            low = line.lower()
            if any(w in low for w in ("error", "fail", "cannot", "can't", "unable", "no such", "not ")):
                return line
        return lines[-1] if lines else ""

    def _failed(self, what: str) -> SinkFailed:
        proc = self._proc
        code = proc.poll() if proc else None
        if proc is not None and code is None and what == "stopped":
            # Its stdin closed under us: it is exiting, maybe still writing its last words (a
            # long stderr line takes a moment), so wait briefly for the exit code it gives.
            try:
                code = proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                pass
        if code is not None:
            time.sleep(0.05)  # let the stderr reader catch the last words
        self._kill()  # hung or exited: the whole group ends (an exited wrapper may leave children)
        detail = f" (exit code {code})" if code is not None else ""
        stderr = self.last_stderr()
        message = f"{self.name} {what}{detail}" + (f": {stderr}" if stderr else "")
        return SinkFailed(self.name, message, stderr=stderr)

    def write(self, block: np.ndarray) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        data = memoryview(np.ascontiguousarray(block, dtype="<f4").tobytes())
        fd = self._proc.stdin.fileno()
        deadline = time.monotonic() + HANG_SEC
        while data:
            try:
                sent = os.write(fd, data)
                data = data[sent:]
                continue
            except BlockingIOError:
                pass
            except (BrokenPipeError, OSError):
                raise self._failed("stopped") from None
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._failed(f"stopped reading audio for {HANG_SEC:g} s (hung)")
            select.select([], [fd], [], min(left, 0.25))
            if self._proc.poll() is not None:
                raise self._failed("exited")

    def _kill(self) -> None:
        """End the group once: after the leader is reaped its pid may be handed out again."""
        proc, self._proc = self._proc, None
        if proc is not None:
            end_group(proc)
            try:
                if proc.stdin is not None:
                    proc.stdin.close()
            except OSError:
                pass

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            assert proc.stdin is not None
            proc.stdin.close()
        except OSError:
            pass
        exited_by_itself(proc, CLOSE_WAIT_SEC)  # a player drains what it holds, then exits
        end_group(proc)  # whatever it started and left behind goes with it


def exited_by_itself(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait up to ``timeout`` for ``proc`` to exit, without reaping it: while it is a zombie its
    pid (= its process group's id) cannot be reused, so the group can still be signalled safely."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:  # already reaped
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def end_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the sink's whole process group (it was started in a session of its own), then
    reap the leader. Also when the leader has exited: children it left keep the group, and the
    kernel never hands out a pid still in use as a group id, so the signal reaches only them."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=2)
    except (OSError, subprocess.TimeoutExpired):
        pass


class PortAudioSink(Sink):
    """sounddevice's blocking OutputStream (PortAudio): write() returns as the device takes audio."""

    name = "sounddevice"

    def __init__(self) -> None:
        self._stream = None

    def open(self) -> None:
        try:
            import sounddevice as sd

            self._stream = sd.OutputStream(samplerate=RATE, channels=CHANNELS, dtype="float32", latency="low")
            self._stream.start()
        except Exception as exc:  # ImportError, OSError (no PortAudio), PortAudioError
            raise SinkFailed("sounddevice", f"sounddevice cannot open an output: {exc}", stderr=str(exc)) from exc

    def write(self, block: np.ndarray) -> None:
        assert self._stream is not None
        try:
            self._stream.write(np.ascontiguousarray(block, dtype=np.float32))
        except Exception as exc:
            raise SinkFailed("sounddevice", f"sounddevice stopped: {exc}", stderr=str(exc)) from exc

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception:
                pass


def portaudio_available() -> bool:
    """sounddevice imports and PortAudio reports a default output device."""
    try:
        import sounddevice as sd

        device = sd.query_devices(kind="output")
        return bool(device) and int(device.get("max_output_channels", 0)) > 0
    except Exception:
        return False


def candidates(spec: str) -> list[Sink]:
    """The sinks ``spec`` stands for, in the order to try them (several only for ``auto``)."""
    words = shlex.split(spec or "auto")
    if not words:
        words = ["auto"]
    head, extra = words[0], words[1:]
    if head == "auto":
        order = AUTO_ORDER_MAC if platform.system() == "Darwin" else AUTO_ORDER_LINUX
        found: list[Sink] = []
        for name in order:
            if name == "sounddevice":
                if portaudio_available():
                    found.append(PortAudioSink())
            elif shutil.which(name):
                found.append(PipeSink(name, [name, *PLAYERS[name]]))
        return found
    if head == "sounddevice":
        return [PortAudioSink()]
    if head == "capture":
        if not extra:
            raise SinkFailed("capture", "capture needs a file: capture PATH [SPEED]", hint="Write player.sink = 'capture /tmp/lofi.f32'.")
        speed = float(extra[1]) if len(extra) > 1 else 1.0
        return [CaptureSink(extra[0], speed)]
    if head in PLAYERS:  # extra arguments right after the program, before its stdin marker
        return [PipeSink(head, [head, *extra, *PLAYERS[head]])]
    return [PipeSink(Path(head).name, words)]
