"""Drum patterns: where each hit falls in a bar, how hard, and how it changes over time.

A bar is 16 sixteenths. Swing delays every odd sixteenth to ``swing`` of its eighth (0.58:
the lazy lofi feel; 0.5: straight). The snare sits a little late, ghost notes and hat
velocities breathe, an open hat closes some bars, the kick varies every 2 or 4 bars, and
the last bar before a new section gets a fill (a snare/tom run) or a stop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Hit:
    beat: float  # position in the bar, in beats (swing and feel applied)
    sound: str  # a key of kit.build_kit
    variant: int
    velocity: float


KICKS = {  # sixteenths; the seed picks a main pattern and a variation
    "dusty": ((0, 10), (0, 7, 10), (0, 3, 10), (0, 10, 11), (0, 6, 10)),
    "brushes": ((0, 8), (0, 11), (0, 8, 14)),
    "electronic": ((0, 8), (0, 4, 8, 12), (0, 8, 10), (0, 6, 8)),
}
HATS = {  # (sixteenths, accent pattern)
    "dusty": ((0, 2, 4, 6, 8, 10, 12, 14), (0, 2, 3, 4, 6, 8, 10, 11, 12, 14)),
    "brushes": ((0, 4, 7, 8, 12, 15),),  # the ride: ding, ding-a ding
    "electronic": (tuple(range(16)), (0, 2, 4, 6, 8, 10, 12, 14)),
}


@dataclass(frozen=True)
class Feel:
    kit: str
    swing: float
    kick_main: tuple[int, ...]
    kick_alt: tuple[int, ...]
    kick_every: int  # the variation comes every this many bars
    hats: tuple[int, ...]
    hats_busy: tuple[int, ...]
    snare_late_beats: float
    energy: float


def choose_feel(kit: str, swing: float, energy: float, rng: np.random.Generator) -> Feel:
    kicks = KICKS[kit]
    main = kicks[int(rng.integers(len(kicks)))]
    alt = kicks[int(rng.integers(len(kicks)))]
    if alt == main:
        alt = tuple(sorted(set(main) | {14}))
    hats = HATS[kit]
    return Feel(kit=kit, swing=swing, kick_main=main, kick_alt=alt, kick_every=int(rng.choice([2, 4])),
                hats=hats[0], hats_busy=hats[-1], snare_late_beats=0.02 + 0.02 * float(rng.random()),
                energy=energy)


def _when(sixteenth: int, swing: float) -> float:
    """Beat position of a sixteenth with swing: odd sixteenths land at ``swing`` of the eighth."""
    eighth, odd = divmod(sixteenth, 2)
    return eighth * 0.5 + (swing * 0.5 if odd else 0.0)


def bar_hits(feel: Feel, bar_in_section: int, busy: bool, ending: str | None, beats: float,
             rng: np.random.Generator) -> list[Hit]:
    """The hits of one bar. ``ending`` is "fill" or "stop" for the bar before a new section."""
    hits: list[Hit] = []
    sw = feel.swing
    human = lambda: float(rng.normal(0.0, 0.008))  # noqa: E731  (a few ms of drift)
    variant = lambda: int(rng.integers(4))  # noqa: E731
    kicks = feel.kick_alt if (bar_in_section + 1) % feel.kick_every == 0 else feel.kick_main
    cut = 16 if ending is None else 12  # a fill or stop takes the last beat
    for s in kicks:
        if s < cut:
            hits.append(Hit(_when(s, sw) + human() * 0.5, "kick", variant(), (1.0 if s == 0 else 0.85) * _v(rng, 0.08)))
    for s in (4, 12):
        if s < cut:
            hits.append(Hit(_when(s, sw) + feel.snare_late_beats + human() * 0.5, "snare", variant(), 0.95 * _v(rng, 0.06)))
    if feel.kit != "electronic":
        for s in (7, 9, 15):  # ghost notes: the quiet ones that make it roll
            if s < cut and rng.random() < 0.25 + 0.3 * feel.energy:
                hits.append(Hit(_when(s, sw) + human(), "ghost", variant(), 0.18 * _v(rng, 0.3)))
    pattern = feel.hats_busy if busy else feel.hats
    opened = rng.random() < 0.5 and ending is None
    for s in pattern:
        if s >= cut:
            continue
        if opened and s == 14:
            hits.append(Hit(_when(s, sw) + human(), "open", variant(), 0.5 * _v(rng, 0.1)))
            continue
        accent = 1.0 if s % 4 == 0 else (0.7 if s % 2 == 0 else 0.5)
        if rng.random() < 0.94:
            hits.append(Hit(_when(s, sw) + human(), "hat", variant(), 0.55 * accent * _v(rng, 0.15)))
    if feel.kit == "brushes":
        for beat in range(4):
            if beat * 4 < cut:
                hits.append(Hit(beat + 0.0, "sweep", variant(), 0.35 * _v(rng, 0.2)))
    if ending == "fill":
        hits.extend(_fill(feel, rng))
    return [h for h in hits if 0.0 <= h.beat < beats]


def _fill(feel: Feel, rng: np.random.Generator) -> list[Hit]:
    """The last beat: four sixteenths of snare rising, or toms falling."""
    out = []
    toms = rng.random() < 0.5
    for k, s in enumerate((12, 13, 14, 15)):
        sound, variant = ("tom", k) if toms else ("snare", int(rng.integers(4)))
        out.append(Hit(_when(s, feel.swing), sound, variant, (0.45 + 0.15 * k) * _v(rng, 0.05)))
    return out


def _v(rng: np.random.Generator, spread: float) -> float:
    return float(1.0 - spread * rng.random())
