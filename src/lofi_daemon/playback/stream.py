"""A streamed source for the mixer: audio that plays while it is still being made.

    PcmBuffer     one track's 48 kHz stereo frames, growing as chunks arrive
    StreamVoice   what the mixer reads: a chain of segments (buffers), each played from its
                  start frame; the last one loops once it is complete

The daemon sends a stream as commands on the worker's pipe (``stream``, then ``stream_data``
chunks of base64 float32 frames, then ``stream_end``), so a stream never leaves a file behind.
The worker's command thread appends chunks; the audio loop reads what has arrived.

Three things use it:
- a **bridge** rendered as it plays (the radio's procedural bridge sends its first bars
  while the next ones are rendered), looping its last section once it is complete;
- **play while decoding**: a backend that decodes in windows hands each window over as it
  is decoded; if decode falls behind the playhead the voice goes silent, says ``buffering``,
  and plays on once ``prebuffer`` frames are ahead again (or the stream is complete), the
  wait doubling at each dry spell (a slow decode gives a few long waits, not a stutter);
- **flow**: a continuation (a next track that begins with the last seconds of the one
  playing) is chained on as a new segment and joined where it begins: the playing segment
  plays to its very end and the next one goes on from its ``start`` frame. A continuation
  whose metadata names ``lead_in_frames`` says that its last frames before ``start`` lead into
  its new part and stand for the playing segment's last frames: over those the voice moves from
  the one into the other (``a + w (b - a)``, equal gain, since the two are meant to be the same
  sound), so a prefix that only approximates the source (a codec's reconstruction) or ends in a
  lead-in (procedural) joins without a step. Without it the join is a hard splice. A
  continuation loops over its new part only (from ``start``): its prefix is what the track
  before it played.

Duck-typed like ``mixer.Voice`` (``read``, ``remaining``, ``pass_end``, ``ended``, ``n``,
``pos``, ``loop``, ``passes``, ``track_id``, ``info``, ``clone_at``), so the mixer needs no
change. Its own events (a segment started, buffering, buffered) are drained by the worker.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .mixer import CHANNELS, RATE, SEAM_SEC

NEVER = 1 << 40  # "no end in sight" for the mixer: a stream being written, or one with a successor
DEFAULT_PREBUFFER_SEC = 1.0
MAX_PREBUFFER_FRAMES = 30 * RATE
MAX_STREAM_FRAMES = 900 * RATE  # as MAX_TRACK_SEC for files: a runaway stream is cut there
MAX_LEAD_IN_FRAMES = 2 * RATE  # flow: at most this much of a continuation's prefix is moved into


def encode_chunk(frames: np.ndarray) -> str:
    """(frames, 2) float32 -> the base64 text of a ``stream_data`` command."""
    data = np.ascontiguousarray(frames, dtype="<f4")
    if data.ndim != 2 or data.shape[1] != CHANNELS:
        raise ValueError(f"a stream chunk is (frames, 2), got {data.shape}")
    return base64.b64encode(data.tobytes()).decode("ascii")


def decode_chunk(text: str) -> np.ndarray:
    """The inverse of ``encode_chunk``; the pipe is trusted less than the code: check it."""
    raw = base64.b64decode(text, validate=True)
    if len(raw) % (4 * CHANNELS):
        raise ValueError("a stream chunk must hold whole stereo float32 frames")
    frames = np.frombuffer(raw, dtype="<f4").reshape(-1, CHANNELS)
    if not np.all(np.isfinite(frames)):
        raise ValueError("a stream chunk holds NaN/inf samples")
    return frames.astype(np.float32)


class PcmBuffer:
    """Frames of one track as they arrive. One writer (the command thread), one reader (the
    audio loop): the writer fills the array, then publishes ``available``; when it needs a
    bigger array it copies first and swaps, so a reader never sees unwritten frames."""

    def __init__(self, expected_frames: int = 0, *, bar_frames: float | None = None) -> None:
        self.data = np.zeros((max(RATE, min(int(expected_frames), MAX_STREAM_FRAMES)), CHANNELS), dtype=np.float32)
        self.available = 0
        self.total: int | None = None  # known once the stream has ended
        self.loop_start = 0  # where a complete buffer wraps to (a bridge loops its last section)
        self.bar_frames = bar_frames  # bar length when the music has one: hand-overs land on bar lines
        self.aborted = False

    @classmethod
    def complete(cls, frames: np.ndarray, *, bar_frames: float | None = None) -> "PcmBuffer":
        buf = cls(0, bar_frames=bar_frames)
        buf.data = np.ascontiguousarray(frames, dtype=np.float32)
        buf.available = buf.data.shape[0]
        buf.total = buf.available
        return buf

    def append(self, frames: np.ndarray) -> None:
        if self.total is not None:
            return  # ended: late chunks are dropped
        end = self.available + frames.shape[0]
        if end > MAX_STREAM_FRAMES:
            frames = frames[: max(0, MAX_STREAM_FRAMES - self.available)]
            end = self.available + frames.shape[0]
        if end > self.data.shape[0]:
            bigger = np.zeros((max(end, 2 * self.data.shape[0]), CHANNELS), dtype=np.float32)
            bigger[: self.available] = self.data[: self.available]
            self.data = bigger
        self.data[self.available:end] = frames
        self.available = end

    def finish(self, loop_start: int = 0) -> None:
        self.loop_start = max(0, min(int(loop_start), max(0, self.available - 1)))
        self.total = self.available

    @property
    def is_complete(self) -> bool:
        return self.total is not None


@dataclass
class Segment:
    """One track inside a stream voice."""

    track_id: str
    buffer: PcmBuffer
    loopable: bool = False
    start: int = 0  # the first frame played (a continuation skips what the last segment played)
    info: dict[str, Any] = field(default_factory=dict)
    xhead: np.ndarray | None = None  # tail -> head crossfade of a complete, non-loopable loop
    lead_in: int = 0  # a continuation's frames before ``start`` that the join moves into (flow)

    def seam(self) -> int:
        buf = self.buffer
        if self.loopable or buf.total is None:
            return 0
        return min(int(SEAM_SEC * RATE), (buf.total - buf.loop_start) // 4)

    def loop_head(self) -> np.ndarray:
        if self.xhead is None:
            seam, buf = self.seam(), self.buffer
            assert buf.total is not None
            t = (np.arange(seam, dtype=np.float64) + 0.5) / max(1, seam)
            tail = buf.data[buf.total - seam: buf.total]
            head = buf.data[buf.loop_start: buf.loop_start + seam]
            self.xhead = (tail * np.cos(0.5 * np.pi * t)[:, None]
                          + head * np.sin(0.5 * np.pi * t)[:, None]).astype(np.float32)
        return self.xhead


class StreamVoice:
    def __init__(self, segment: Segment, *, loop: bool = True,
                 prebuffer_frames: int = int(DEFAULT_PREBUFFER_SEC * RATE)) -> None:
        self.segments = [segment]
        self.loop = loop
        self.passes = 0
        self.prebuffer = max(1, int(prebuffer_frames))
        self._p = segment.start
        self._in_xhead = False
        self.buffering = False
        self.dry_spells = 0
        self.silent_frames = 0  # frames written as silence while buffering (bench/tests read it)
        self.handover_left: int | None = None  # frames until the mixer should crossfade away
        self._handover_lead = 0
        self.events: list[dict[str, Any]] = []

    # ----- what the mixer reads ---------------------------------------------------------------
    @property
    def seg(self) -> Segment:
        return self.segments[0]

    @property
    def track_id(self) -> str:
        return self.seg.track_id

    @property
    def info(self) -> dict[str, Any]:
        return self.seg.info

    @property
    def n(self) -> int:
        buf = self.seg.buffer
        return buf.total if buf.total is not None else buf.available

    @property
    def pos(self) -> int:
        return self._p

    @property
    def complete(self) -> bool:
        """All of the current segment has arrived (its length is known)."""
        return self.seg.buffer.is_complete

    @property
    def unheard(self) -> bool:
        """Nothing of it has been played yet (still waiting for its first frames)."""
        return self._p <= self.seg.start and self.passes == 0 and not self.chained

    @property
    def chained(self) -> bool:
        return len(self.segments) > 1

    def _end(self) -> int:
        """Where this pass of the current segment ends (only meaningful once complete)."""
        buf = self.seg.buffer
        assert buf.total is not None
        if self.chained or not self.loop:
            return buf.total
        return buf.total - self.seg.seam()

    @property
    def pass_end(self) -> int:
        return self._end() if self.seg.buffer.is_complete else NEVER

    @property
    def remaining(self) -> int:
        if self.handover_left is not None:
            return max(0, self.handover_left) + self._handover_lead
        if self.chained or not self.seg.buffer.is_complete:
            return NEVER
        return max(0, self._end() - self._p)

    @property
    def ended(self) -> bool:
        buf = self.seg.buffer
        return (not self.loop and not self.chained and buf.is_complete and self._p >= (buf.total or 0)) \
            or buf.aborted

    def clone_at(self, frame: int) -> "StreamVoice":
        other = object.__new__(StreamVoice)
        other.__dict__.update(self.__dict__)
        other.segments = list(self.segments)
        other.events = []
        other._p = max(0, min(int(frame), max(0, self.n - 1)))
        other._in_xhead = False
        return other

    # ----- control (the worker, between blocks) -----------------------------------------------
    def chain(self, segment: Segment) -> None:
        """Play ``segment`` after the current one ends (it goes on from ``segment.start``)."""
        del self.segments[1:]
        self.segments.append(segment)
        self.handover_left = None

    def unchain(self) -> Segment:
        """Take the chained continuation off (it is to play now, from its start, on its own)."""
        nxt = self.segments.pop(1)
        del self.segments[1:]
        return nxt

    def hand_over_at_boundary(self, lead_frames: int, *, min_frames: int = 0,
                              fallback_sec: float = 2.0) -> int:
        """Ask the mixer to crossfade away at the next bar line (``fallback_sec`` from now when
        the music has no bars); ``lead_frames`` is the mixer's crossfade. Returns frames to go."""
        buf = self.seg.buffer
        bar = buf.bar_frames
        if bar and bar > 0:
            origin = self.seg.start
            k = math.ceil((self._p + min_frames - origin) / bar)
            left = int(round(origin + k * bar)) - self._p
        else:
            left = max(min_frames, int(fallback_sec * RATE))
        self.handover_left = max(0, left)
        self._handover_lead = int(lead_frames)
        return self.handover_left

    def _event(self, kind: str, **data: Any) -> None:
        self.events.append({"kind": kind, **data})

    def drain_events(self) -> list[dict[str, Any]]:
        events, self.events = self.events, []
        return events

    # ----- audio ------------------------------------------------------------------------------
    def read(self, out: np.ndarray) -> int:
        count = out.shape[0]
        written = 0
        while written < count:
            seg, buf = self.seg, self.seg.buffer
            if buf.aborted:
                break
            available, complete = buf.available, buf.is_complete
            if self.buffering:
                if complete or available - self._p >= self.prebuffer:
                    self.buffering = False
                    self._event("buffered", track_id=seg.track_id, silent_sec=round(self.silent_frames / RATE, 3))
                else:  # silence until enough is ahead: one long wait, not a stutter
                    out[written:] = 0.0
                    self.silent_frames += count - written
                    self._count(count - written)
                    return count
            if complete:
                end = self._end()
                if self._p >= end:
                    if self.chained:
                        self._next_segment()
                        continue
                    if not self.loop:
                        break
                    self._p = buf.loop_start + (self._p - end)
                    self._in_xhead = seg.seam() > 0
                    self.passes += 1
                    continue
                take = min(count - written, end - self._p)
                head_end = buf.loop_start + seg.seam()
                fade = self._chain_fade(end)
                if fade and self._p < end - fade:
                    take = min(take, end - fade - self._p)
                elif fade:
                    self._chain_mix(out[written:written + take], end, fade)
                    self._p += take
                    written += take
                    self._count(take)
                    continue
                if self._in_xhead and buf.loop_start <= self._p < head_end:
                    take = min(take, head_end - self._p)
                    i = self._p - buf.loop_start
                    out[written:written + take] = seg.loop_head()[i:i + take]
                else:
                    out[written:written + take] = buf.data[self._p:self._p + take]
            else:
                if self._p >= available:
                    # Decode is behind the playhead: wait, and wait longer each time, so a decode
                    # slower than real time gives a few long pauses, never a stutter.
                    if self._p > seg.start:  # (waiting for the very first chunk is no dry spell)
                        if self.dry_spells:
                            self.prebuffer = min(2 * self.prebuffer, MAX_PREBUFFER_FRAMES)
                        self.dry_spells += 1
                    self.buffering = True
                    self._event("buffering", track_id=seg.track_id, position_sec=round(self._p / RATE, 3),
                                wait_sec=round(self.prebuffer / RATE, 3))
                    continue
                take = min(count - written, available - self._p)
                out[written:written + take] = buf.data[self._p:self._p + take]
            self._p += take
            written += take
            self._count(take)
        return written

    def _chain_fade(self, end: int) -> int:
        """Frames of the move into a chained continuation's lead-in (0: a hard join, when it
        names none, or not enough of it has arrived)."""
        if not self.chained:
            return 0
        nxt = self.segments[1]
        fade = min(nxt.lead_in, MAX_LEAD_IN_FRAMES, nxt.start, end - self.seg.start)
        return fade if fade > 0 and nxt.buffer.available >= nxt.start else 0

    def _chain_mix(self, out: np.ndarray, end: int, fade: int) -> None:
        """``out`` = this segment's frames from the playhead moved toward the continuation's
        prefix frames that stand for them: a + w (b - a), w rising linearly to 1 at ``end``."""
        take = out.shape[0]
        a = self.seg.buffer.data[self._p:self._p + take]
        nxt = self.segments[1]
        at = nxt.start - (end - self._p)
        b = nxt.buffer.data[at:at + take]
        k = np.arange(self._p - (end - fade), self._p - (end - fade) + take, dtype=np.float64)
        w = ((k + 1.0) / fade).astype(np.float32)[:, None]  # reaches 1 on the last frame: the prefix's own
        out[:] = a + w * (b - a)

    def _count(self, frames: int) -> None:
        if self.handover_left is not None:
            self.handover_left -= frames

    def _next_segment(self) -> None:
        previous = self.segments.pop(0)
        nxt = self.seg
        self._p = nxt.start
        self._in_xhead = False
        self.passes = 0
        self._event("track_started", track_id=nxt.track_id, previous=previous.track_id, joined=True,
                    join_frame=nxt.start)


def drain_stream_events(voices: list[Any]) -> list[dict[str, Any]]:
    """The events of every stream voice among ``voices`` (the worker sends them on)."""
    events: list[dict[str, Any]] = []
    for voice in voices:
        drain = getattr(voice, "drain_events", None)
        if voice is not None and drain is not None:
            events.extend(drain())
    return events


class StreamInbox:
    """The worker's side of the stream commands (its command thread calls these).

    ``stream`` opens a buffer and returns the voice that reads it; ``stream_data`` and
    ``stream_end`` go straight into that buffer (``take`` answers True for them, so they
    never wait behind the audio loop); an unknown id is a stream already stopped: dropped.
    """

    def __init__(self) -> None:
        self.buffers: dict[str, PcmBuffer] = {}

    def open(self, cmd: dict[str, Any]) -> StreamVoice:
        track_id = str(cmd["track_id"])
        bar = cmd.get("bar_frames")
        buf = PcmBuffer(int(cmd.get("expected_frames") or 0),
                        bar_frames=float(bar) if isinstance(bar, (int, float)) and bar > 0 else None)
        self.buffers[track_id] = buf
        prebuffer = float(cmd.get("prebuffer_sec") or DEFAULT_PREBUFFER_SEC)
        segment = Segment(track_id, buf, loopable=bool(cmd.get("loopable")), info=cmd.get("info") or {})
        return StreamVoice(segment, prebuffer_frames=int(max(0.05, prebuffer) * RATE))

    def take(self, cmd: dict[str, Any]) -> bool:
        name = cmd.get("cmd")
        if name not in ("stream_data", "stream_end"):
            return False
        buf = self.buffers.get(str(cmd.get("track_id")))
        if buf is None:
            return True
        if name == "stream_data":
            buf.append(decode_chunk(str(cmd.get("pcm") or "")))
        else:
            if cmd.get("aborted"):
                buf.aborted = True
            buf.finish(int(cmd.get("loop_start") or 0))
            del self.buffers[str(cmd.get("track_id"))]
        return True


def file_voice(samples: np.ndarray, cmd: dict[str, Any]) -> StreamVoice:
    """A decoded file (frames, 2) as a one-segment stream voice: it can hand over on a bar
    line and take a continuation, which a plain ``Voice`` cannot."""
    bar = cmd.get("bar_frames")
    buf = PcmBuffer.complete(samples, bar_frames=float(bar) if isinstance(bar, (int, float)) and bar > 0 else None)
    start = int(cmd.get("from_frame") or 0)
    start = max(0, min(start, buf.available - 1))
    buf.loop_start = start  # a continuation loops over its new part, not the prefix before it
    lead_in = cmd.get("lead_in")
    lead_in = max(0, min(int(lead_in), start)) if isinstance(lead_in, int) and not isinstance(lead_in, bool) else 0
    return StreamVoice(Segment(str(cmd["track_id"]), buf, loopable=bool(cmd.get("loopable")), start=start,
                               info=cmd.get("info") or {}, lead_in=lead_in))
