"""The melody: motifs that repeat and vary, in call and answer, over the chords.

The seed draws two motifs per song (one for A, one for B): a rhythm (onsets and lengths in
sixteenths within one bar) and a contour (steps along the scale). A four-bar phrase plays:

    bar 1  call: the motif, starting on a chord tone
    bar 2  answer: the same rhythm, the contour turned upside down, ending on a chord tone
    bar 3  the call again, moved to the new chord (a sequence)
    bar 4  a held note or silence: room to breathe

Every strong-beat note is pulled to the nearest chord tone, the others stay on the scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Note:
    beat: float  # position in the bar, in beats
    length: float  # in beats
    midi: int
    velocity: float


@dataclass(frozen=True)
class Motif:
    onsets: tuple[int, ...]  # sixteenths
    lengths: tuple[int, ...]
    steps: tuple[int, ...]  # scale steps from the first note


RHYTHMS = (
    ((0, 2, 4, 8), (2, 2, 4, 6)), ((2, 4, 6, 10), (2, 2, 4, 4)), ((0, 3, 6, 8, 12), (3, 3, 2, 4, 4)),
    ((4, 6, 8), (2, 2, 8)), ((0, 6, 8, 10), (6, 2, 2, 6)), ((2, 6, 10, 12, 14), (4, 4, 2, 2, 2)),
)


def draw_motif(rng: np.random.Generator, density: float) -> Motif:
    onsets, lengths = RHYTHMS[int(rng.integers(len(RHYTHMS)))]
    if density < 0.4 and len(onsets) > 3:  # calm: fewer notes, the last one longer
        onsets, lengths = onsets[:3], lengths[:2] + (8,)
    steps = [0]
    for _ in onsets[1:]:
        steps.append(steps[-1] + int(rng.choice([-2, -1, -1, 1, 1, 2, 3])))
    return Motif(tuple(onsets), tuple(lengths), tuple(steps))


def phrase_bar(motif: Motif, bar_in_phrase: int, chord_notes: list[int], scale: np.ndarray, previous: int,
               octave_up: bool, thin: bool, rng: np.random.Generator) -> tuple[list[Note], int]:
    """The notes of bar ``bar_in_phrase`` (0..3) of a phrase; returns them and the last pitch."""
    lift = 12 if octave_up else 0
    tones = np.array(sorted({n + 12 * k for n in chord_notes for k in (-1, 0, 1, 2)}))
    if bar_in_phrase % 4 == 3:  # breathe: one held chord tone, sometimes nothing at all
        if rng.random() < 0.5 or thin:
            return [], previous
        target = int(tones[np.argmin(np.abs(tones - previous))])
        return [Note(0.0, 3.0, target + lift, 0.5)], target
    steps = motif.steps if bar_in_phrase % 4 != 1 else tuple(-s for s in motif.steps)  # the answer inverts
    anchor = int(tones[np.argmin(np.abs(tones - previous))])
    start_index = int(np.argmin(np.abs(scale - anchor)))
    notes: list[Note] = []
    last = anchor
    for k, (onset, length, step) in enumerate(zip(motif.onsets, motif.lengths, steps)):
        if thin and k % 2 == 1:
            continue
        pitch = int(scale[int(np.clip(start_index + step, 0, scale.size - 1))])
        strong = onset % 4 == 0
        final = k == len(motif.onsets) - 1 and bar_in_phrase % 4 == 1
        if strong or final:  # strong beats and the answer's end sit on chord tones
            pitch = int(tones[np.argmin(np.abs(tones - pitch))])
        velocity = (0.8 if strong else 0.62) * float(1.0 - 0.15 * rng.random())
        notes.append(Note(onset / 4.0, length / 4.0, pitch + lift, velocity))
        last = pitch
    return notes, last
