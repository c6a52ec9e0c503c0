"""The form of a song: sections over time, phrases of 8 bars, and the chord of every bar.

A song is an endless cycle of sections after its intro:

    intro(4) | A(8) B(8) break(4) A(8) B(8) drop(4) | A(8) B(8) break(4) ...

- intro: keys alone under a closed filter that opens; no drums, bass from its last bar.
- A: the main progression (4 bars, twice), melody on its motif, the full groove.
- B: the contrasting progression, busier hats, the melody an octave up in its second half.
- break: drums and bass out, the filter down, the melody sparse: the quiet valley.
- drop: the keys step out; drums, bass and a thinned melody carry it.
- outro (the track's last bars): keys and a thinned groove that lead back into the intro,
  so the file still loops seamlessly.

The last bar of a phrase is a turnaround (two chords leading home), and the bar before a
new section gets a drum fill or a stop. A track of ``section_offset`` k starts at the k-th
section of this cycle (no intro), so a song can go on in its next section with the same key,
tempo, progressions and motifs: ``next_section_offset`` in the metadata says where.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .harmony import Bar, Pool

CYCLE = (("A", 8), ("B", 8), ("break", 4), ("A", 8), ("B", 8), ("drop", 4))
LAYERS = ("keys", "lead", "bass", "drums")


@dataclass(frozen=True)
class Section:
    name: str
    start_bar: int
    bars: int
    song_index: int  # position in the song's sequence (0 = intro), what section_offset counts


# How loud each layer plays in each section (0 = out), and how closed the master filter is.
LEVELS: dict[str, dict[str, float]] = {
    "intro": {"keys": 0.6, "lead": 0.0, "bass": 0.0, "drums": 0.0, "filter": 0.8},
    "A": {"keys": 1.0, "lead": 1.0, "bass": 1.0, "drums": 1.0, "filter": 0.0},
    "B": {"keys": 1.0, "lead": 1.0, "bass": 1.0, "drums": 1.0, "filter": 0.0},
    "break": {"keys": 0.65, "lead": 0.5, "bass": 0.0, "drums": 0.0, "filter": 1.0},
    "drop": {"keys": 0.0, "lead": 0.7, "bass": 1.0, "drums": 1.0, "filter": 0.0},
    "outro": {"keys": 0.9, "lead": 0.5, "bass": 0.7, "drums": 0.5, "filter": 0.35},
    "loop": {"keys": 1.0, "lead": 1.0, "bass": 1.0, "drums": 1.0, "filter": 0.0},
}


@dataclass(frozen=True)
class BarPlan:
    index: int
    section: Section
    bar_in_section: int
    chords: Bar
    progression: str  # "A" or "B": which progression the chords come from
    ending: str | None  # "fill" / "stop" when the next bar starts a new section
    levels: dict[str, float]


def song_sections(total_bars: int, section_offset: int) -> list[Section]:
    """The sections a track of ``total_bars`` plays, starting at the song's ``section_offset``."""
    if total_bars < 12:  # too short for a form: one section that loops
        return [Section("loop", 0, total_bars, max(1, section_offset))]
    outro = 4 if total_bars >= 24 else 2
    body = total_bars - outro
    sections: list[Section] = []
    index = section_offset
    bar = 0
    while bar < body:
        if index == 0:
            name, length = "intro", 4 if total_bars >= 24 else 2
        else:
            name, length = CYCLE[(index - 1) % len(CYCLE)]
        length = min(length, body - bar)
        if body - bar - length < 2:  # no stub section at the end: this one takes it
            length = body - bar
        sections.append(Section(name, bar, length, index))
        bar += length
        index += 1
    sections.append(Section("outro", bar, outro, index))
    return sections


def plan_bars(total_bars: int, section_offset: int, pool: Pool, rng: np.random.Generator) -> tuple[list[BarPlan], int]:
    """Every bar's section, chords and ending; and the song's next section offset after this track."""
    a_progression = pool.a[int(rng.integers(len(pool.a)))]
    b_progression = pool.b[int(rng.integers(len(pool.b)))]
    turnaround = pool.turnarounds[int(rng.integers(len(pool.turnarounds)))]
    sections = song_sections(total_bars, section_offset)
    plans: list[BarPlan] = []
    for k, section in enumerate(sections):
        nxt = sections[(k + 1) % len(sections)]
        uses_b = section.name == "B"
        progression = b_progression if uses_b else a_progression
        for j in range(section.bars):
            chords = progression[j % 4]
            if j % 8 == 7 and section.name in ("A", "B"):
                chords = turnaround
            last = j == section.bars - 1
            ending = None
            if last and nxt.name != section.name and LEVELS[nxt.name]["drums"] > 0 and LEVELS[section.name]["drums"] > 0:
                ending = "stop" if nxt.name == "drop" else "fill"
            elif section.name in ("A", "B") and j % 8 == 7 and not last:
                ending = "fill"  # a fill every 8 bars inside a long section too
            plans.append(BarPlan(section.start_bar + j, section, j, chords, "B" if uses_b else "A", ending,
                                 LEVELS[section.name]))
    return plans, sections[-1].song_index if len(sections) > 1 else section_offset + 1
