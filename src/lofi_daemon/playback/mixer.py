"""The mixer: 48 kHz stereo float32 blocks, sample-accurate, no clicks.

    Mixer.render(frames) -> (frames, 2) float32

A ``Voice`` is one track being read: it loops on its exact last sample when the track was
made to loop (``loopable``), otherwise through a short equal-power crossfade of its tail
into its head. The mixer holds the current voice, voices fading out, and at most one
queued voice, which crossfades in (equal-power) when the current pass nears its end.
Master gain = volume x pause gain; both move in linear per-sample ramps, so pause, resume
and volume never click or zipper. Seek is a ramp-long crossfade from the old position.

Pure numpy and no I/O: the playback worker calls ``render`` from its audio loop and drains
``events`` afterwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

RATE = 48_000
CHANNELS = 2
BLOCK = 1024  # 21.3 ms: commands land on a block boundary
RAMP_SEC = 0.02  # pause / resume / volume / seek ramps
SEAM_SEC = 0.25  # tail -> head crossfade of a track that was not made to loop
DEFAULT_CROSSFADE_SEC = 4.0
QUICK_CROSSFADE_SEC = 1.0  # an explicit play / next: prompt, but still no hard cut
MAX_VOLUME = 1.5


class Voice:
    """One track being read, with its position and loop mode."""

    def __init__(self, samples: np.ndarray, track_id: str, *, loopable: bool, loop: bool = True,
                 seam_frames: int = int(SEAM_SEC * RATE), info: dict[str, Any] | None = None) -> None:
        if samples.ndim != 2 or samples.shape[1] != CHANNELS or samples.shape[0] == 0:
            raise ValueError(f"a voice needs (frames, 2) samples, got {samples.shape}")
        self.samples = np.ascontiguousarray(samples, dtype=np.float32)
        self.track_id = track_id
        self.info = info or {}
        self.n = self.samples.shape[0]
        self.loopable = loopable
        self.loop = loop
        self.pos = 0
        self.passes = 0
        self.seam = 0 if loopable else min(seam_frames, self.n // 4)
        self._xhead: np.ndarray | None = None
        self._in_xhead = False  # after a wrap, the head is the crossfaded tail+head
        if self.seam:
            t = (np.arange(self.seam, dtype=np.float64) + 0.5) / self.seam
            fade_in = np.sin(0.5 * np.pi * t)[:, None]
            fade_out = np.cos(0.5 * np.pi * t)[:, None]
            tail = self.samples[self.n - self.seam:]
            head = self.samples[:self.seam]
            self._xhead = (tail * fade_out + head * fade_in).astype(np.float32)

    def clone_at(self, frame: int) -> "Voice":
        """The same track (samples shared, not copied) starting at ``frame``."""
        other = object.__new__(Voice)
        other.__dict__.update(self.__dict__)
        other.pos = max(0, min(int(frame), self.n - 1))
        other._in_xhead = False
        return other

    @property
    def pass_end(self) -> int:
        return self.n - self.seam if self.loop else self.n

    @property
    def remaining(self) -> int:
        """Frames left in this pass (before the wrap, or before the end when not looping)."""
        return max(0, self.pass_end - self.pos)

    @property
    def ended(self) -> bool:
        return not self.loop and self.pos >= self.n

    def read(self, out: np.ndarray) -> int:
        """Fill ``out`` (frames, 2); returns the frames written (fewer only at the end, loop off)."""
        count = out.shape[0]
        written = 0
        while written < count:
            end = self.pass_end
            if self.pos >= end:
                if not self.loop:
                    break
                # Past the end by k frames (loop switched on late) = k frames into the seam.
                self.pos -= end
                self._in_xhead = self.seam > 0
                self.passes += 1
                continue
            take = min(count - written, end - self.pos)
            if self._in_xhead and self.pos < self.seam:
                assert self._xhead is not None
                take = min(take, self.seam - self.pos)
                out[written:written + take] = self._xhead[self.pos:self.pos + take]
            else:
                out[written:written + take] = self.samples[self.pos:self.pos + take]
            self.pos += take
            written += take
        return written


@dataclass
class Fade:
    """An equal-power gain curve over ``length`` frames: sin rising (in) or cos falling (out)."""

    length: int
    rising: bool
    done: int = 0

    def gains(self, count: int) -> np.ndarray:
        k = np.arange(self.done, self.done + count, dtype=np.float64)
        t = np.minimum((k + 0.5) / self.length, 1.0)
        self.done += count
        return (np.sin if self.rising else np.cos)(0.5 * np.pi * t).astype(np.float32)

    @property
    def finished(self) -> bool:
        return self.done >= self.length


class Ramp:
    """A gain that moves linearly to its target over ``ramp_frames`` (whatever the distance)."""

    def __init__(self, value: float, ramp_frames: int) -> None:
        self.value = value
        self.target = value
        self._ramp_frames = max(1, ramp_frames)
        self._step = 0.0

    def set(self, target: float) -> None:
        self.target = target
        self._step = abs(target - self.value) / self._ramp_frames

    @property
    def moving(self) -> bool:
        return self.value != self.target

    def frames_to_target(self) -> int:
        return 0 if not self.moving else math.ceil(abs(self.target - self.value) / self._step)

    def gains(self, count: int) -> np.ndarray:
        if not self.moving:
            return np.full(count, self.value, dtype=np.float32)
        direction = 1.0 if self.target > self.value else -1.0
        k = np.arange(1, count + 1, dtype=np.float64)
        g = self.value + direction * self._step * k
        g = np.minimum(g, self.target) if direction > 0 else np.maximum(g, self.target)
        self.value = float(g[-1])
        if abs(self.value - self.target) < 1e-9:
            self.value = self.target
        return g.astype(np.float32)


class Mixer:
    def __init__(self, *, crossfade_sec: float = DEFAULT_CROSSFADE_SEC, ramp_sec: float = RAMP_SEC,
                 volume: float = 1.0) -> None:
        self.ramp_frames = max(1, int(round(ramp_sec * RATE)))
        self.crossfade_frames = int(round(crossfade_sec * RATE))
        self.current: Voice | None = None
        self._fade_in: Fade | None = None
        self.outgoing: list[tuple[Voice, Fade]] = []
        self.queued: Voice | None = None
        self.skip_pending = False  # next(): crossfade to the queued voice as soon as there is one
        self.loop = True
        self.volume = Ramp(volume, self.ramp_frames)
        self.pause = Ramp(1.0, self.ramp_frames)
        self.paused = False
        self.frames_out = 0
        self.events: list[dict[str, Any]] = []
        self._scratch = np.zeros((BLOCK, CHANNELS), dtype=np.float32)

    # ----- state --------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        """Anything audible or about to be (a sink must stay open)."""
        return self.current is not None or bool(self.outgoing)

    @property
    def state(self) -> str:
        if self.current is None:
            return "stopped"
        return "paused" if self.paused else "playing"

    def _event(self, kind: str, **data: Any) -> None:
        self.events.append({"kind": kind, "frame": self.frames_out, **data})

    # ----- commands (between blocks) ------------------------------------------------------
    def set_crossfade(self, seconds: float) -> None:
        self.crossfade_frames = max(self.ramp_frames, int(round(seconds * RATE)))

    def play(self, voice: Voice, *, fade_sec: float = QUICK_CROSSFADE_SEC) -> None:
        """Play ``voice`` now: crossfade from what plays, or ramp in from silence."""
        voice.loop = self.loop
        self.queued = None
        self.skip_pending = False
        if self.paused:  # play means play; the paused track is not heard again
            self._end_paused()
        self._switch_to(voice, max(self.ramp_frames, int(round(fade_sec * RATE))) if self.current else self.ramp_frames)

    def enqueue(self, voice: Voice) -> None:
        """Play ``voice`` next: crossfade at the end of the current pass (or now, after next())."""
        voice.loop = self.loop
        if self.current is None:
            self._switch_to(voice, self.ramp_frames)
            return
        self.queued = voice

    def next(self) -> bool:
        """Go to the queued voice now; without one, as soon as one is queued. True if now."""
        if self.queued is not None and self.current is not None:
            self._switch_to(self.queued, int(QUICK_CROSSFADE_SEC * RATE))
            return True
        self.skip_pending = True
        return False

    def stop(self, fade_sec: float = 0.0) -> None:
        """Silence: a click-free ramp, or a fade of ``fade_sec`` (the last editor quitting)."""
        self.queued = None
        self.skip_pending = False
        if self.paused:
            if self.current is not None:
                self._event("stopped", track_id=self.current.track_id)
            self._end_paused()
            return
        if self.current is not None:
            fade = max(self.ramp_frames, int(round(fade_sec * RATE)))
            self.outgoing.append((self.current, Fade(fade, rising=False)))
            self._event("stopped", track_id=self.current.track_id)
            self.current = None
            self._fade_in = None

    def _end_paused(self) -> None:
        """Paused, what plays is silent (or within one ramp of it): it ends where it is. A
        fade-out would be heard, because the pause gain would have to come back up under it."""
        self.current, self._fade_in = None, None
        self.outgoing.clear()
        self.paused = False
        self.pause = Ramp(1.0, self.ramp_frames)  # nothing left to hear: full gain at once

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        self.pause.set(0.0 if paused else 1.0)

    def set_volume(self, volume: float) -> None:
        self.volume.set(min(MAX_VOLUME, max(0.0, volume)))

    def set_loop(self, on: bool) -> None:
        self.loop = on
        for voice in [self.current, self.queued]:
            if voice is not None:
                voice.loop = on

    def seek(self, seconds: float) -> None:
        if self.current is None:
            return
        target = self.current.clone_at(int(round(seconds * RATE)))
        target.loop = self.current.loop
        self.outgoing.append((self.current, Fade(self.ramp_frames, rising=False)))
        self.current, self._fade_in = target, Fade(self.ramp_frames, rising=True)

    def _switch_to(self, voice: Voice, fade_frames: int) -> None:
        old = self.current
        if old is not None:
            if not old.loop:  # a voice that ends must not leave a hole in the fade
                fade_frames = max(self.ramp_frames, min(fade_frames, old.n - old.pos))
            self.outgoing.append((old, Fade(fade_frames, rising=False)))
        self.current = voice
        self._fade_in = Fade(fade_frames, rising=True)
        if self.queued is voice:
            self.queued = None
        self.skip_pending = False
        self._event("track_started", track_id=voice.track_id,
                    previous=old.track_id if old is not None else None, fade_frames=fade_frames)

    # ----- audio --------------------------------------------------------------------------
    def render(self, frames: int = BLOCK) -> np.ndarray:
        out = np.zeros((frames, CHANNELS), dtype=np.float32)
        done = 0
        while done < frames:
            if self.paused and not self.pause.moving:
                break  # silent and frozen: the position waits for resume
            seg = frames - done
            if self.paused:  # stop advancing exactly where the ramp reaches zero
                seg = min(seg, max(1, self.pause.frames_to_target()))
            if self.current is not None and self.queued is not None:
                if self.skip_pending:
                    self._switch_to(self.queued, int(QUICK_CROSSFADE_SEC * RATE))
                else:
                    until = self.current.remaining - self.crossfade_frames
                    if until <= 0:
                        self._switch_to(self.queued, self.crossfade_frames)
                    else:
                        seg = min(seg, until)
            self._mix(out[done:done + seg])
            gain = self.volume.gains(seg) * self.pause.gains(seg)
            out[done:done + seg] *= gain[:, None]
            done += seg
            self.frames_out += seg
        if done < frames:
            self.frames_out += frames - done
        return out

    def _mix(self, buf: np.ndarray) -> None:
        n = buf.shape[0]
        if self._scratch.shape[0] < n:
            self._scratch = np.zeros((n, CHANNELS), dtype=np.float32)
        tmp = self._scratch[:n]
        voice = self.current
        if voice is not None:
            passes = voice.passes
            tmp[:] = 0.0
            got = voice.read(tmp)
            if self._fade_in is not None:
                tmp *= self._fade_in.gains(n)[:, None]
                if self._fade_in.finished:
                    self._fade_in = None
            buf += tmp
            if voice.passes != passes:
                self._event("looped", track_id=voice.track_id, passes=voice.passes)
            if got < n and voice.ended:  # (a queued voice took over before the end: render())
                self._event("ended", track_id=voice.track_id)
                self.current = None
                self._fade_in = None
        keep: list[tuple[Voice, Fade]] = []
        for old, fade in self.outgoing:
            tmp[:] = 0.0
            old.read(tmp)
            tmp *= fade.gains(n)[:, None]
            buf += tmp
            if not fade.finished:
                keep.append((old, fade))
        self.outgoing = keep

    def drain_events(self) -> list[dict[str, Any]]:
        events, self.events = self.events, []
        return events
