"""Chords: progression pools per genre and mood, chord qualities, scales and voicings.

A progression is four bars of ``(degree, quality)`` per bar, or two chords in one bar written
as a tuple of two. Each pool has an A list (the song's main phrase) and a B list (the
contrasting section); a turnaround replaces the last bar of a phrase to lead back home.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Chord = tuple[int, str]  # semitones above the key's tonic, quality name
Bar = tuple[Chord, ...]  # one chord, or two that split the bar

QUALITIES: dict[str, tuple[int, ...]] = {
    "maj": (0, 4, 7), "min": (0, 3, 7), "add9": (0, 4, 7, 14), "madd9": (0, 3, 7, 14),
    "maj7": (0, 4, 7, 11), "maj9": (0, 4, 7, 11, 14), "m7": (0, 3, 7, 10), "m9": (0, 3, 7, 10, 14),
    "m11": (0, 3, 7, 10, 14, 17), "7": (0, 4, 7, 10), "9": (0, 4, 7, 10, 14), "13": (0, 4, 10, 14, 21),
    "7b9": (0, 4, 7, 10, 13), "sus": (0, 5, 7, 10, 14), "m7b5": (0, 3, 6, 10), "6": (0, 4, 7, 9, 14),
}
# Plain triads get colour when the genre wants it (jazz: every chord is an extended one).
JAZZ_COLOUR = {"maj": "maj9", "min": "m9", "maj7": "maj9", "m7": "m11", "7": "13", "add9": "6", "madd9": "m9"}


def _p(*bars: object) -> tuple[Bar, ...]:
    out = []
    for bar in bars:
        out.append(tuple(bar) if isinstance(bar[0], tuple) else (bar,))  # type: ignore[index, arg-type]
    return tuple(out)


@dataclass(frozen=True)
class Pool:
    a: tuple[tuple[Bar, ...], ...]
    b: tuple[tuple[Bar, ...], ...]
    turnarounds: tuple[Bar, ...]
    colour: bool = False  # extend triads into 9ths/11ths/13ths


POOLS: dict[tuple[str, bool], Pool] = {
    ("lofi", False): Pool(
        a=(_p((2, "m9"), (7, "9"), (0, "maj9"), (9, "m9")), _p((0, "maj9"), (9, "m9"), (2, "m9"), (7, "13")),
           _p((5, "maj9"), (4, "m7"), (2, "m9"), (0, "maj9"))),
        b=(_p((5, "maj9"), (5, "m9"), (4, "m7"), (9, "7b9")), _p((9, "m9"), (4, "m7"), (5, "maj9"), (7, "sus")),
           _p((3, "maj9"), (8, "maj9"), (2, "m7b5"), (7, "7b9"))),
        turnarounds=(((2, "m9"), (7, "13")), ((5, "maj9"), (7, "sus")), ((4, "m7"), (9, "7b9")))),
    ("lofi", True): Pool(
        a=(_p((0, "m9"), (5, "m9"), (10, "9"), (3, "maj9")), _p((0, "m9"), (8, "maj9"), (3, "maj9"), (10, "9")),
           _p((0, "m7"), (5, "m9"), (8, "maj9"), (7, "m7"))),
        b=(_p((8, "maj9"), (10, "9"), (3, "maj9"), (7, "7b9")), _p((5, "m9"), (10, "13"), (3, "maj9"), (8, "maj9")),
           _p((8, "maj7"), (7, "m7"), (5, "m9"), (2, "m7b5"))),
        turnarounds=(((2, "m7b5"), (7, "7b9")), ((8, "maj9"), (10, "9")), ((5, "m9"), (7, "7b9")))),
    ("jazz", False): Pool(
        a=(_p((2, "m9"), (7, "13"), (0, "maj9"), ((9, "m7"), (2, "m7"))),
           _p((0, "maj9"), ((9, "m9"), (8, "7b9")), (2, "m9"), ((7, "13"), (1, "7")))),
        b=(_p((5, "maj9"), (10, "9"), (4, "m7"), (9, "7b9")), _p((4, "m7b5"), (9, "7b9"), (2, "m9"), (7, "13"))),
        turnarounds=(((2, "m9"), (1, "7")), ((4, "m7"), (3, "7"))), colour=True),
    ("jazz", True): Pool(
        a=(_p((0, "m9"), (5, "m11"), ((2, "m7b5"), (7, "7b9")), (0, "m9")),
           _p((0, "m11"), (8, "maj9"), (2, "m7b5"), (7, "7b9"))),
        b=(_p((5, "m9"), (10, "13"), (3, "maj9"), (8, "maj9")), _p((3, "maj9"), (8, "13"), (2, "m7b5"), (7, "7b9"))),
        turnarounds=(((2, "m7b5"), (7, "7b9")), ((8, "13"), (7, "7b9"))), colour=True),
    ("synthwave", True): Pool(
        a=(_p((0, "min"), (8, "maj"), (3, "maj"), (10, "maj")), _p((0, "madd9"), (10, "maj"), (8, "maj"), (10, "maj"))),
        b=(_p((8, "maj7"), (10, "add9"), (5, "min"), (7, "maj")), _p((5, "madd9"), (8, "maj"), (10, "maj"), (7, "sus"))),
        turnarounds=(((8, "maj"), (10, "maj")), ((5, "min"), (7, "maj")))),
    ("synthwave", False): Pool(
        a=(_p((0, "add9"), (7, "maj"), (9, "min"), (5, "maj")), _p((9, "min"), (5, "maj"), (0, "maj"), (7, "maj"))),
        b=(_p((5, "maj7"), (7, "add9"), (4, "min"), (9, "min")), _p((2, "min"), (5, "maj"), (7, "sus"), (7, "maj"))),
        turnarounds=(((5, "maj"), (7, "maj")), ((2, "min"), (7, "sus")))),
    ("ambient", False): Pool(
        a=(_p((0, "maj9"), (0, "maj9"), (5, "maj9"), (5, "maj9")), _p((0, "add9"), (4, "m7"), (5, "maj9"), (5, "6"))),
        b=(_p((9, "m9"), (9, "m9"), (7, "sus"), (7, "sus")), _p((2, "m9"), (2, "m9"), (10, "maj9"), (10, "maj9"))),
        turnarounds=(((5, "maj9"), (7, "sus")),)),
    ("ambient", True): Pool(
        a=(_p((0, "m9"), (0, "m9"), (8, "maj9"), (8, "maj9")), _p((0, "madd9"), (3, "maj9"), (8, "maj9"), (5, "m9"))),
        b=(_p((5, "m9"), (5, "m9"), (10, "sus"), (10, "sus")), _p((3, "maj9"), (3, "maj9"), (10, "6"), (7, "m7"))),
        turnarounds=(((8, "maj9"), (10, "sus")),)),
    ("folk", False): Pool(
        a=(_p((0, "add9"), (7, "maj"), (9, "min"), (5, "maj7")), _p((0, "maj"), (5, "add9"), (0, "maj"), (7, "sus"))),
        b=(_p((5, "add9"), (0, "maj"), (7, "maj"), (9, "min")), _p((9, "min"), (5, "maj7"), (0, "add9"), (7, "maj"))),
        turnarounds=(((5, "maj"), (7, "sus")), ((2, "min"), (7, "maj")))),
    ("folk", True): Pool(
        a=(_p((0, "min"), (10, "maj"), (8, "maj7"), (7, "maj")), _p((0, "madd9"), (5, "min"), (10, "maj"), (3, "add9"))),
        b=(_p((8, "maj7"), (3, "add9"), (10, "maj"), (7, "sus")), _p((5, "madd9"), (0, "min"), (8, "maj"), (10, "maj"))),
        turnarounds=(((8, "maj"), (10, "maj")), ((5, "min"), (7, "maj")))),
}
KEY_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")  # what metadata calls a tonic
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)


def pool_for(harmony: str, minor: bool) -> Pool:
    return POOLS.get((harmony, minor)) or POOLS[("lofi", minor)]


def chord_tones(quality: str, colour: bool) -> tuple[int, ...]:
    return QUALITIES[JAZZ_COLOUR.get(quality, quality) if colour else quality]


def voice(root_midi: int, tones: tuple[int, ...], low: int = 53, high: int = 77) -> list[int]:
    """Close voicing in the warm middle register: every tone folded into ``[low, high)``, the
    root kept at the bottom unless it would sit too low (rootless voicings are fine: the bass has it)."""
    notes = set()
    for interval in tones:
        note = root_midi + interval
        while note >= high:
            note -= 12
        while note < low:
            note += 12
        notes.add(note)
    return sorted(notes)


def scale_notes(tonic_midi: int, minor: bool, low: int, high: int) -> np.ndarray:
    steps = MINOR_SCALE if minor else MAJOR_SCALE
    return np.array([n for n in range(low, high) if (n - tonic_midi) % 12 in steps])
