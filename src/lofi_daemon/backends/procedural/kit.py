"""Drum sounds: three kits of synthesized one-shots, a few variants of each so no two hits
are the same sample.

- dusty: a round pitch-swept kick with a felt click, a snare of band-passed noise over a
  185 Hz body, short hats; the drum bus in mix.py adds the grit.
- brushes: a soft kick, brush taps (long, quiet, dark noise), a brush sweep, a ride cymbal
  (inharmonic partials, long tail).
- electronic: a longer kick, a clap (three noise bursts), bright hats, a crash.
Toms serve every kit for fills.
"""

from __future__ import annotations

import numpy as np

from .instruments import SAMPLE_RATE

VARIANTS = 4


def _t(sec: float) -> np.ndarray:
    return np.arange(int(sec * SAMPLE_RATE), dtype=np.float32) / np.float32(SAMPLE_RATE)


def _bandpass(noise: np.ndarray, low_hz: float, high_hz: float) -> np.ndarray:
    spec = np.fft.rfft(noise)
    f = np.fft.rfftfreq(noise.size, 1.0 / SAMPLE_RATE)
    shape = 1.0 / np.sqrt(1.0 + (low_hz / np.maximum(f, 1.0)) ** 4) / np.sqrt(1.0 + (f / high_hz) ** 4)
    return np.fft.irfft(spec * shape, noise.size).astype(np.float32)


def _norm(x: np.ndarray) -> np.ndarray:
    return (x / max(1e-9, float(np.max(np.abs(x))))).astype(np.float32)


def _kick(rng: np.random.Generator, start_hz: float, end_hz: float, decay: float, sec: float) -> np.ndarray:
    t = _t(sec)
    freq = end_hz + (start_hz - end_hz) * np.exp(-t * 28.0)
    body = np.sin(2 * np.pi * np.cumsum(freq) / SAMPLE_RATE) * np.exp(-t * decay)
    click = _bandpass(rng.standard_normal(t.size).astype(np.float32), 800, 4000) * np.exp(-t * 400.0)
    return _norm(body + 0.12 * click)


def _snare(rng: np.random.Generator, body_hz: float, snappy: float, sec: float = 0.3) -> np.ndarray:
    t = _t(sec)
    noise = _bandpass(rng.standard_normal(t.size).astype(np.float32), 1200, 7000) * np.exp(-t * 22.0)
    body = np.sin(2 * np.pi * body_hz * t) * np.exp(-t * 30.0)
    return _norm(snappy * noise / max(1e-9, float(np.std(noise[:2400]))) * 0.3 + body)


def _hat(rng: np.random.Generator, decay: float, sec: float, low_hz: float = 6000) -> np.ndarray:
    t = _t(sec)
    return _norm(_bandpass(rng.standard_normal(t.size).astype(np.float32), low_hz, 14000) * np.exp(-t * decay))


def _brush_tap(rng: np.random.Generator) -> np.ndarray:
    t = _t(0.25)
    env = (1 - np.exp(-t * 300.0)) * np.exp(-t * 14.0)
    return _norm(_bandpass(rng.standard_normal(t.size).astype(np.float32), 1500, 6000) * env)


def _brush_sweep(rng: np.random.Generator) -> np.ndarray:
    t = _t(0.6)
    env = np.sin(np.pi * t / t[-1]) ** 2
    return _norm(_bandpass(rng.standard_normal(t.size).astype(np.float32), 2000, 7000) * env)


def _ride(rng: np.random.Generator) -> np.ndarray:
    t = _t(1.2)
    ratios = (1.0, 1.48, 1.87, 2.63, 3.11, 4.2)
    base = 420.0 * rng.uniform(0.98, 1.02)
    tone = sum(np.sin(2 * np.pi * base * r * t + rng.uniform(0, 6.28)) / (1 + i) for i, r in enumerate(ratios))
    hiss = _bandpass(rng.standard_normal(t.size).astype(np.float32), 5000, 13000)
    return _norm((0.5 * tone + 0.5 * hiss) * np.exp(-t * 3.0) * (1 - np.exp(-t * 2000.0)))


def _clap(rng: np.random.Generator) -> np.ndarray:
    t = _t(0.3)
    env = sum(np.where(t >= d, np.exp(-(t - d) * 90.0), 0.0) for d in (0.0, 0.011, 0.022)) + 0.5 * np.exp(-t * 14.0)
    return _norm(_bandpass(rng.standard_normal(t.size).astype(np.float32), 900, 5000) * env)


def _tom(rng: np.random.Generator, hz: float) -> np.ndarray:
    t = _t(0.45)
    freq = hz * (1.0 + 0.5 * np.exp(-t * 20.0))
    body = np.sin(2 * np.pi * np.cumsum(freq) / SAMPLE_RATE) * np.exp(-t * 8.0)
    return _norm(body + 0.05 * rng.standard_normal(t.size) * np.exp(-t * 60.0))


def _crash(rng: np.random.Generator) -> np.ndarray:
    t = _t(2.0)
    return _norm(_bandpass(rng.standard_normal(t.size).astype(np.float32), 3000, 12000) * np.exp(-t * 2.2))


def build_kit(kit: str, rng: np.random.Generator) -> dict[str, list[np.ndarray]]:
    """``{"kick": [variants], "snare": [...], ...}`` for one render, drawn from ``rng``."""
    def many(make) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
        return [make() for _ in range(VARIANTS)]

    sounds: dict[str, list[np.ndarray]]
    if kit == "brushes":
        sounds = {"kick": many(lambda: _kick(rng, 110, 55, 11.0, 0.35)),
                  "snare": many(lambda: _brush_tap(rng)), "ghost": many(lambda: _brush_tap(rng)),
                  "hat": many(lambda: _ride(rng)), "open": many(lambda: _brush_sweep(rng)),
                  "sweep": many(lambda: _brush_sweep(rng))}
    elif kit == "electronic":
        sounds = {"kick": many(lambda: _kick(rng, 160, 48, 6.0, 0.5)),
                  "snare": many(lambda: _norm(_clap(rng) + 0.6 * _snare(rng, 200, 1.0)[:14400])),
                  "ghost": many(lambda: _snare(rng, 200, 0.6)), "hat": many(lambda: _hat(rng, 90.0, 0.08, 7000)),
                  "open": many(lambda: _hat(rng, 12.0, 0.4, 6000)), "crash": many(lambda: _crash(rng))}
    else:  # dusty
        sounds = {"kick": many(lambda: _kick(rng, 130, 50, 9.0, 0.4)),
                  "snare": many(lambda: _snare(rng, 185, 1.2)), "ghost": many(lambda: _snare(rng, 185, 0.7)),
                  "hat": many(lambda: _hat(rng, 70.0, 0.07)), "open": many(lambda: _hat(rng, 10.0, 0.35, 5000))}
    sounds["tom"] = [_tom(rng, hz) for hz in (190.0, 140.0, 100.0, 80.0)]
    return sounds
