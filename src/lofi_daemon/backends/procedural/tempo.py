"""Fitting the tempo to the track: a loop closes only on a whole number of beats.

The asked tempo wins: the track may be up to ``SLACK_SEC`` longer or shorter than asked
(DESIGN: within 0.1 s), and a whole number of bars is preferred, then of beats, then of
half-beats, whichever keeps the tempo within 1.5 % of the asked one (the promise is 2 %).
"""

from __future__ import annotations

from dataclasses import dataclass

SLACK_SEC = 0.09
TOLERANCE = 0.015


@dataclass(frozen=True)
class Grid:
    frames: int  # samples in the track
    bpm: float
    beats: float  # whole beats, or a half at the very end
    sample_rate: int

    @property
    def beat_frames(self) -> float:
        return self.frames / self.beats

    @property
    def bars(self) -> int:
        """Bars started (the last may be short)."""
        return int(-(-self.beats // 4))


def fit(duration_sec: float, bpm: float, sample_rate: int, min_sec: float, max_sec: float) -> Grid:
    low, high = max(min_sec, duration_sec - SLACK_SEC), min(max_sec, duration_sec + SLACK_SEC)
    best: tuple[float, float, float] | None = None  # (error, beats, seconds)
    for unit in (4.0, 1.0, 0.5):  # bar, beat, half-beat
        ideal = duration_sec * bpm / 60.0 / unit
        for count in {max(1, int(ideal)), max(1, int(ideal) + 1)}:
            beats = count * unit
            seconds = min(max(beats * 60.0 / bpm, low), high)
            error = abs(beats * 60.0 / seconds / bpm - 1.0)
            if best is None or error < best[0] - 1e-12:
                best = (error, beats, seconds)
        if best is not None and best[0] <= TOLERANCE:
            break
    assert best is not None
    _, beats, seconds = best
    frames = _fast_length(seconds, beats, bpm, sample_rate, low, high)
    return Grid(frames=frames, bpm=beats * 60.0 * sample_rate / frames, beats=beats, sample_rate=sample_rate)


def _fast_length(seconds: float, beats: float, bpm: float, sample_rate: int, low: float, high: float) -> int:
    """The frame count nearest ``seconds`` whose FFT is fast (small prime factors only).

    The mix works on full-length spectra; a length with a large prime factor makes each FFT
    ten times slower. Only lengths that keep the tempo within 1.9 % and the slack are taken.
    """
    ideal = int(round(seconds * sample_rate))
    best = (1 << 62, 0, ideal)
    lo, hi = int(low * sample_rate), int(high * sample_rate)
    for frames in range(lo - lo % 4, hi + 1, 4):
        if frames < lo or abs(beats * 60.0 * sample_rate / frames / bpm - 1.0) > 0.019:
            continue
        rank = (_largest_prime_factor(frames), abs(frames - ideal), frames)
        if rank < best:
            best = rank
    return best[2]


def _largest_prime_factor(value: int) -> int:
    """The largest prime factor up to 31, or what is left when a larger one remains."""
    largest = 1
    for p in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31):
        while value % p == 0:
            value, largest = value // p, p
    return largest if value == 1 else value
