"""The mixer: 48 kHz stereo float32 blocks, sample-accurate, no clicks, never past full scale.

    Mixer.render(frames) -> (frames, 2) float32, every sample finite and |x| <= 1.0

A ``Voice`` is one track being read: it loops on its exact last sample when the track was
made to loop (``loopable``), otherwise through a short equal-power crossfade of its tail
into its head. The mixer holds the current voice, voices fading out, and at most one
queued voice, which crossfades in (equal-power) when the current pass nears its end.

The gain of every sample is composed of bounded stages, never accumulated:

    voice envelope  0..1    fade in, or fade out *from the level the voice had* (a voice
                            cut short while fading in leaves at that level, not at full)
    crossfade sum   <= 1.42 the voices' envelopes together are held at or under sqrt(2)
                            (what one equal-power crossfade reaches), whatever the storm of
                            play / seek / next; scaled smoothly, so no step appears
    pause           0..1    linear 20 ms ramp
    volume          0..1.5  linear 20 ms ramp
    safety limiter          the identity up to -1 dBFS, above it a soft knee that reaches
                            1.0 only at infinity; its slope is never above 1, so it cannot
                            make a step larger than the one it was given

so no command order can push a sample past 1.0, or turn a join into a click. Seek is a
ramp-long crossfade from the old position.

Pure numpy and no I/O: the playback worker calls ``render`` from its audio loop, drains
``events`` afterwards, and reports what the limiter did (``limited``).
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
MAX_ENVELOPE_SUM = math.sqrt(2.0)  # sin + cos at the middle of one equal-power crossfade
LIMIT_KNEE = 10 ** (-1 / 20)  # -1 dBFS: below it the limiter is the identity
INAUDIBLE = 1e-3  # -60 dB: a voice leaving at this level or lower is dropped at once


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
        # A track made to loop has no faded edges: played to its end (loop off), its last
        # ramp fades out, or the stop would be a click.
        self.end_fade = min(int(RAMP_SEC * RATE), self.n // 4) if loopable else 0

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
                if not self.loop and self.end_fade and self.pos + take > self.n - self.end_fade:
                    self._fade_end(out[written:written + take], self.pos)
            self.pos += take
            written += take
        return written

    def _fade_end(self, seg: np.ndarray, start: int) -> None:
        """Scale the part of ``seg`` (frames from ``start``) that lies in the end fade."""
        first = self.n - self.end_fade
        k = np.arange(max(start, first), start + seg.shape[0], dtype=np.float64)
        t = (k - first + 0.5) / self.end_fade
        seg[int(k[0]) - start:] *= np.cos(0.5 * np.pi * t).astype(np.float32)[:, None]


@dataclass
class Fade:
    """An equal-power gain curve over ``length`` frames: sin rising from 0 to 1 (in), or cos
    falling from ``start`` to 0 (out). ``level`` is the last gain it gave (where it stands)."""

    length: int
    rising: bool
    done: int = 0
    start: float = 1.0  # a fade out begins at the level its voice had, never above it
    level: float = 0.0

    def __post_init__(self) -> None:
        self.length = max(1, int(self.length))
        self.level = 0.0 if self.rising else self.start

    def gains(self, count: int) -> np.ndarray:
        k = np.arange(self.done, self.done + count, dtype=np.float64)
        t = np.minimum((k + 0.5) / self.length, 1.0)
        self.done += count
        g = np.sin(0.5 * np.pi * t) if self.rising else self.start * np.cos(0.5 * np.pi * t)
        if count:
            self.level = float(g[-1])
        return g

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
        self.limited_samples = 0  # samples the safety limiter changed (the worker reports them)
        self.limited_peak = 0.0  # the largest magnitude it was given
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

    def stop(self) -> None:
        self.queued = None
        self.skip_pending = False
        if self.paused:
            if self.current is not None:
                self._event("stopped", track_id=self.current.track_id)
            self._end_paused()
            return
        if self.current is not None:
            self._fade_out(self.current, self.ramp_frames)
            self._event("stopped", track_id=self.current.track_id)
            self.current = None
            self._fade_in = None

    def _end_paused(self) -> None:
        """Paused, what plays is silent (or within one ramp of it): it ends where it is. A
        fade-out would be heard, because the pause gain would have to come back up under it,
        so the pause gain is folded into the voices instead: each leaves from the level it is
        heard at now (nothing, once the pause ramp is over) and the pause gain returns to 1."""
        heard = self.pause.value
        leaving = [(v, f.level) for v, f in self.outgoing]
        if self.current is not None:
            leaving.append((self.current, self._current_level()))
        self.current, self._fade_in = None, None
        self.outgoing = [(v, Fade(self.ramp_frames, rising=False, start=level * heard))
                         for v, level in leaving if level * heard > INAUDIBLE]
        self.paused = False
        self.pause = Ramp(1.0, self.ramp_frames)

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        self.pause.set(0.0 if paused else 1.0)

    def set_volume(self, volume: float) -> None:
        self.volume.set(min(MAX_VOLUME, max(0.0, volume)))

    def set_loop(self, on: bool) -> None:
        self.loop = on
        voice = self.current
        if on and voice is not None and not voice.loop and voice.seam and voice.pos > voice.n - voice.seam:
            # Inside the tail that a looping pass reads crossfaded with the head: switching
            # in place would jump between the two, so it crossfades like a seek.
            target = voice.clone_at(voice.pos)
            target.loop = True
            self._fade_out(voice, self.ramp_frames)
            self.current, self._fade_in = target, Fade(self.ramp_frames, rising=True)
        for voice in [self.current, self.queued]:
            if voice is not None:
                voice.loop = on

    def seek(self, seconds: float) -> None:
        if self.current is None:
            return
        target = self.current.clone_at(int(round(seconds * RATE)))
        target.loop = self.current.loop
        self._fade_out(self.current, self.ramp_frames)
        self.current, self._fade_in = target, Fade(self.ramp_frames, rising=True)

    def _current_level(self) -> float:
        """The envelope gain the current voice stands at (1 once its fade in is over)."""
        return 1.0 if self._fade_in is None else self._fade_in.level

    def _fade_out(self, voice: Voice, frames: int) -> None:
        """Move the current ``voice`` out, falling from the level it has now: composed, so a
        voice that had only begun to rise leaves quietly instead of at full gain."""
        level = self._current_level()
        if level > INAUDIBLE:
            self.outgoing.append((voice, Fade(frames, rising=False, start=level)))

    def _switch_to(self, voice: Voice, fade_frames: int) -> None:
        old = self.current
        if old is not None:
            if not old.loop:  # a voice that ends must not leave a hole in the fade
                fade_frames = max(self.ramp_frames, min(fade_frames, old.n - old.pos))
            self._fade_out(old, fade_frames)
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
        self._limit(out)
        return out

    def _limit(self, out: np.ndarray) -> None:
        """The safety limiter, in place: identity up to LIMIT_KNEE, a tanh knee above it."""
        finite = np.isfinite(out)
        if not finite.all():  # cannot come from finite tracks; if it ever did, silence, not noise
            out[~finite] = 0.0
        magnitude = np.abs(out)
        over = magnitude > LIMIT_KNEE
        if not over.any():
            return
        m = magnitude[over].astype(np.float64)
        head = 1.0 - LIMIT_KNEE
        limited = np.minimum(LIMIT_KNEE + head * np.tanh((m - LIMIT_KNEE) / head), 1.0)
        out[over] = (np.sign(out[over]) * limited).astype(np.float32)
        self.limited_samples += int(m.size)
        self.limited_peak = max(self.limited_peak, float(m.max()))

    def _mix(self, buf: np.ndarray) -> None:
        n = buf.shape[0]
        if self._scratch.shape[0] < n:
            self._scratch = np.zeros((n, CHANNELS), dtype=np.float32)
        tmp = self._scratch[:n]
        voice = self.current
        # The envelopes first (they do not depend on the audio), so that their sum can be held
        # at MAX_ENVELOPE_SUM before anything is heard.
        current_gain = None
        if voice is not None:
            current_gain = self._fade_in.gains(n) if self._fade_in is not None else np.ones(n)
        out_gains = [fade.gains(n) for _, fade in self.outgoing]
        total = sum(out_gains, np.zeros(n) if current_gain is None else current_gain)
        # total is continuous in time (every envelope is), so this scale is too: no step.
        scale = MAX_ENVELOPE_SUM / np.maximum(total, MAX_ENVELOPE_SUM)  # 1 until the sum passes sqrt(2)
        if voice is not None:
            assert current_gain is not None
            passes = voice.passes
            tmp[:] = 0.0
            got = voice.read(tmp)
            tmp *= (current_gain * scale).astype(np.float32)[:, None]
            if self._fade_in is not None and self._fade_in.finished:
                self._fade_in = None
            buf += tmp
            if voice.passes != passes:
                self._event("looped", track_id=voice.track_id, passes=voice.passes)
            if got < n and voice.ended:  # (a queued voice took over before the end: render())
                self._event("ended", track_id=voice.track_id)
                self.current = None
                self._fade_in = None
        keep: list[tuple[Voice, Fade]] = []
        for (old, fade), gains in zip(self.outgoing, out_gains):
            tmp[:] = 0.0
            old.read(tmp)
            tmp *= (gains * scale).astype(np.float32)[:, None]
            buf += tmp
            if not fade.finished and fade.level > INAUDIBLE and not old.ended:
                keep.append((old, fade))
        self.outgoing = keep

    def drain_events(self) -> list[dict[str, Any]]:
        events, self.events = self.events, []
        return events
