"""Fitting the tempo to the track: a loop closes only on a whole number of steps.

The track keeps its asked length (to the sample, unless that length would make every FFT
of the mix slow: then it moves by at most 5 ms). The tempo gives way instead: a whole
number of bars is preferred, then of beats, of half-beats, of sixteenths, whichever keeps
the tempo within 1.5 % of the asked one (the promise is 2 %). A track that ends on a part
of a bar or beat is a short last bar, like a 2/4 bar before the top of the form.
"""

from __future__ import annotations

from dataclasses import dataclass

TOLERANCE = 0.015
NUDGE_SEC = 0.005
SMALL_PRIME = 97  # a length whose prime factors are all at most this is a fast FFT length


@dataclass(frozen=True)
class Grid:
    frames: int  # samples in the track
    bpm: float
    beats: float  # whole beats, or a part of one at the very end
    sample_rate: int

    @property
    def beat_frames(self) -> float:
        return self.frames / self.beats

    @property
    def bars(self) -> int:
        """Bars started (the last may be short)."""
        return int(-(-self.beats // 4))


def fit(duration_sec: float, bpm: float, sample_rate: int, min_sec: float, max_sec: float) -> Grid:
    frames = fast_length(int(round(duration_sec * sample_rate)), int(NUDGE_SEC * sample_rate))
    seconds = frames / sample_rate
    best: tuple[float, float] | None = None  # (error, beats)
    for unit in (4.0, 1.0, 0.5, 0.25):  # bar, beat, half-beat, sixteenth
        ideal = seconds * bpm / 60.0 / unit
        for count in {max(1, int(ideal)), int(ideal) + 1}:
            beats = count * unit
            error = abs(beats * 60.0 / seconds / bpm - 1.0)
            if best is None or error < best[0] - 1e-12:
                best = (error, beats)
        if best is not None and best[0] <= TOLERANCE:
            break
    assert best is not None
    beats = best[1]
    return Grid(frames=frames, bpm=beats * 60.0 / seconds, beats=beats, sample_rate=sample_rate)


def fast_length(frames: int, nudge: int) -> int:
    """``frames`` if its FFT is fast, else the nearest length within ``nudge`` that is.

    The mix works on full-length spectra; a length with a large prime factor makes each FFT
    ten times slower (a 240 s track would take minutes)."""
    if _largest_prime_factor(frames) <= SMALL_PRIME:
        return frames
    for step in range(1, nudge + 1):
        for candidate in (frames - step, frames + step):
            if _largest_prime_factor(candidate) <= SMALL_PRIME:
                return candidate
    return frames


def _largest_prime_factor(value: int) -> int:
    """The largest prime factor if it is at most SMALL_PRIME; otherwise something larger."""
    largest = 1
    p = 2
    while p <= SMALL_PRIME and value > 1:
        while value % p == 0:
            value, largest = value // p, p
        p += 1 if p == 2 else 2
    return largest if value == 1 else value
