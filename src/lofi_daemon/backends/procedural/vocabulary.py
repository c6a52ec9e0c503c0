"""What the words of a prompt mean: a small documented vocabulary mapped to musical choices.

The prompt picks the pool (genre, instruments, mood, textures, tempo); the seed later picks
within it. Every word is either understood (it changed a choice), filler ("a", "music"), or
ignored, and the caller is told which. Rules worth knowing:

- a number is a tempo only next to "bpm" ("80 bpm", "bpm 80"); "for 60 minutes" is not;
- "no X", "not X", "without X", "less X" negate the next understood word or phrase;
- the first named instrument plays the chords, a second one the melody.

docs/procedural.md lists the whole vocabulary; ``VOCABULARY`` below is the source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

KEYS_INSTRUMENTS = ("rhodes", "piano", "guitar", "pad", "strings", "synth")
BASS_INSTRUMENTS = ("upright", "synth")
KITS = ("dusty", "brushes", "electronic")


@dataclass(frozen=True)
class Genre:
    """The defaults one genre word stands for."""

    tempo: float
    swing: float  # where the off-beat 16th falls, as a fraction of an 8th (0.5 = straight)
    keys: str
    lead: str
    bass: str
    kit: str | None
    harmony: str  # progression pool in harmony.py
    cutoff_hz: float  # the master's top end
    vinyl: float  # record surface level, 0..1
    density: float  # how busy the melody is, 0..1


GENRES: dict[str, Genre] = {
    "lofi": Genre(76, 0.58, "rhodes", "piano", "synth", "dusty", "lofi", 6000, 0.35, 0.5),
    "jazz": Genre(86, 0.62, "piano", "rhodes", "upright", "brushes", "jazz", 7500, 0.2, 0.65),
    "synthwave": Genre(96, 0.5, "synth", "synth", "synth", "electronic", "synthwave", 11000, 0.0, 0.55),
    "ambient": Genre(64, 0.5, "pad", "piano", "synth", None, "ambient", 5000, 0.1, 0.3),
    "acoustic": Genre(82, 0.56, "guitar", "piano", "upright", "brushes", "folk", 8000, 0.1, 0.5),
}


@dataclass(frozen=True)
class Choices:
    """Everything the prompt decided. The renderer reads only this (and the seed)."""

    genre: str = "lofi"
    tempo: float = 76.0
    tempo_explicit: bool = False  # "80 bpm": the seed does not move it
    swing: float = 0.58
    keys: str = "rhodes"
    lead: str | None = "piano"
    bass: str | None = "synth"
    kit: str | None = "dusty"
    harmony: str = "lofi"
    minor: bool | None = None  # None: the seed decides
    cutoff_hz: float = 6000.0
    vinyl: float = 0.35
    rain: float = 0.0
    tape: float = 0.5  # wow/flutter and hiss depth, 0..1
    density: float = 0.5
    energy: float = 0.5  # how hard the drums hit and how full the form is, 0..1
    understood: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()

    def report(self) -> dict[str, list[str]]:
        return {"understood": list(self.understood), "ignored": list(self.ignored)}


@dataclass(frozen=True)
class Word:
    """One entry: the token sequences that spell it and what it does (and, negated, undoes)."""

    forms: tuple[str, ...]
    apply: dict[str, object] = field(default_factory=dict)
    negated: dict[str, object] = field(default_factory=dict)
    genre: str | None = None
    instrument: str | None = None  # a keys/lead instrument name
    tempo_shift: float = 0.0


def _w(forms: str, **kw: object) -> Word:
    return Word(tuple(f.strip() for f in forms.split(",")), **kw)  # type: ignore[arg-type]


VOCABULARY: tuple[Word, ...] = (
    # genres
    _w("lofi, lo-fi, lo fi, chillhop, hip hop, hip-hop, hiphop, lofi hip hop", genre="lofi"),
    _w("boom bap, boom-bap, boombap", genre="lofi", apply={"energy": 0.8, "swing": 0.6}),
    _w("jazz, jazzy, jazzhop, bebop, swing, swinging", genre="jazz"),
    _w("bossa, bossa nova", genre="jazz", apply={"swing": 0.52, "kit": "brushes"}, tempo_shift=4),
    _w("synthwave, retrowave, outrun, 80s, eighties, vaporwave, retro", genre="synthwave"),
    _w("ambient, drone, atmospheric, soundscape, beatless", genre="ambient"),
    _w("acoustic, folk, unplugged, campfire", genre="acoustic"),
    # instruments that play chords (first named) or the melody (second named)
    _w("rhodes, e-piano, epiano, electric piano, wurlitzer, wurli", instrument="rhodes"),
    _w("piano, felt piano, soft piano, keys, grand piano", instrument="piano"),
    _w("guitar, guitars, nylon, nylon guitar, acoustic guitar, classical guitar", instrument="guitar"),
    _w("pad, pads, synth pad, warm pad", instrument="pad"),
    _w("strings, string, orchestral, orchestra, violin, violins, cello, cinematic", instrument="strings"),
    _w("synth, synths, synthesizer, analog, analogue, moog, juno", instrument="synth"),
    _w("upright, upright bass, double bass, acoustic bass, contrabass", apply={"bass": "upright"},
       negated={"bass": "synth"}),
    _w("synth bass, 808, sub bass, bassline", apply={"bass": "synth"}, negated={"bass": "upright"}),
    _w("bass", apply={}, negated={"bass": None}),
    # drums
    _w("drums, beat, beats, percussion", apply={}, negated={"kit": None}),
    _w("brushes, brush, brushed", apply={"kit": "brushes"}, negated={"kit": "dusty"}),
    _w("dusty, dusty drums, dusty kit, crunchy", apply={"kit": "dusty", "vinyl": 0.55}),
    _w("drum machine, electronic, electronic drums, 909, linndrum", apply={"kit": "electronic"}),
    _w("beatless, drumless", apply={"kit": None}),
    # moods
    _w("chill, chilled, chilling, relax, relaxed, relaxing, calm, mellow, lazy, laid-back, laid back",
       tempo_shift=-6, apply={"energy": 0.35}, negated={"energy": 0.7}),
    _w("study, studying, focus, reading, coding, work, working", tempo_shift=-4, apply={"density": 0.35}),
    _w("sleep, sleepy, sleeping, slow, slower, lullaby", tempo_shift=-12, apply={"energy": 0.25, "cutoff_hz": 4000},
       negated={"energy": 0.6}),
    _w("upbeat, energetic, fast, faster, groovy, dance, driving, bouncy, lively", tempo_shift=12,
       apply={"energy": 0.8, "density": 0.65}, negated={"energy": 0.35}),
    _w("sad, melancholic, melancholy, dark, moody, lonely, gloomy, minor, bittersweet, nostalgic",
       apply={"minor": True}, negated={"minor": False}),
    _w("happy, bright, sunny, uplifting, cheerful, major, hopeful", apply={"minor": False}, negated={"minor": True}),
    _w("night, nighttime, midnight, late night, late-night", tempo_shift=-4, apply={"minor": True}),
    _w("morning, sunrise, coffee, cafe", apply={"minor": False}, tempo_shift=2),
    _w("dreamy, hazy, nostalgic haze, washed", apply={"tape": 0.9}),
    _w("warm, muffled, underwater, soft, mellowed", apply={"cutoff_hz": 3800}),
    _w("crisp, clean, clear, hifi, hi-fi", apply={"cutoff_hz": 12000, "vinyl": 0.0, "tape": 0.15}),
    # textures
    _w("vinyl, crackle, crackles, record, records, dusty vinyl, vinyl crackle", apply={"vinyl": 1.0},
       negated={"vinyl": 0.0}),
    _w("rain, rainy, raining, rainfall, storm, stormy, drizzle", apply={"rain": 1.0}, negated={"rain": 0.0}),
    _w("tape, cassette, wobble, wow, flutter", apply={"tape": 1.0}, negated={"tape": 0.0}),
)
FILLER = frozenset("a an the and with of in on at some for to very music song songs track tracks tune vibe vibes "
                   "style type kind like bit little lots lot please mix playlist background sound sounds "
                   "really more my me i make give x".split())
NEGATIONS = frozenset({"no", "not", "without", "less", "non", "zero"})
TEMPO_LIMITS = (50.0, 160.0)


def _lexicon() -> dict[tuple[str, ...], Word]:
    table: dict[tuple[str, ...], Word] = {}
    for word in VOCABULARY:
        for form in word.forms:
            table.setdefault(tuple(_tokens(form)), word)
    return table


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:[-'][a-z0-9]+)*", text.lower())


LEXICON = _lexicon()
LONGEST = max(len(k) for k in LEXICON)


def parse_prompt(prompt: str) -> Choices:
    """The choices a prompt makes, with the words it understood and the ones it ignored."""
    tokens = _tokens(prompt)
    understood: list[str] = []
    ignored: list[str] = []
    matches: list[tuple[Word, bool]] = []
    explicit_tempo: float | None = None
    negate: str | None = None  # the negation word just read ("no", "not", ...)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        tempo, used = _bpm_at(tokens, i)
        if used:
            if tempo is not None and TEMPO_LIMITS[0] <= tempo <= TEMPO_LIMITS[1]:
                explicit_tempo = tempo
                understood.append(" ".join(tokens[i:i + used]))
            else:
                ignored.append(" ".join(tokens[i:i + used]) + f" (tempo {TEMPO_LIMITS[0]:g}-{TEMPO_LIMITS[1]:g} bpm)")
            i += used
            negate = None
            continue
        if token in NEGATIONS:
            negate = token
            i += 1
            continue
        for size in range(min(LONGEST, len(tokens) - i), 0, -1):
            word = LEXICON.get(tuple(tokens[i:i + size]))
            if word is not None:
                phrase = " ".join(tokens[i:i + size])
                understood.append(f"{negate} {phrase}" if negate else phrase)
                matches.append((word, negate is not None))
                i += size
                break
        else:
            if token not in FILLER:
                ignored.append(token)
            i += 1
        negate = None
    return _decide(matches, explicit_tempo, tuple(understood), tuple(ignored))


def _bpm_at(tokens: list[str], i: int) -> tuple[float | None, int]:
    """``(tempo, tokens used)`` for "80 bpm", "80bpm" or "bpm 80" at ``i``; (None, 0) otherwise."""
    token = tokens[i]
    glued = re.fullmatch(r"(\d{1,4})bpm", token)
    if glued:
        return float(glued.group(1)), 1
    if token.isdigit() and i + 1 < len(tokens) and tokens[i + 1] == "bpm":
        return float(token), 2
    if token == "bpm" and i + 1 < len(tokens) and tokens[i + 1].isdigit():
        return float(tokens[i + 1]), 2
    return None, 0


def _decide(matches: list[tuple[Word, bool]], explicit_tempo: float | None,
            understood: tuple[str, ...], ignored: tuple[str, ...]) -> Choices:
    # The last genre named wins; it sets the defaults the other words then adjust.
    genre_name = next((w.genre for w, neg in reversed(matches) if w.genre and not neg), "lofi")
    g = GENRES[genre_name]
    choices = Choices(genre=genre_name, tempo=g.tempo, swing=g.swing, keys=g.keys, lead=g.lead, bass=g.bass,
                      kit=g.kit, harmony=g.harmony, cutoff_hz=g.cutoff_hz, vinyl=g.vinyl, density=g.density,
                      understood=understood, ignored=ignored)
    changes: dict[str, object] = {}
    shift = 0.0
    named: list[str] = []
    banned: set[str] = set()
    for word, negated in matches:
        if word.instrument:
            (banned.add if negated else named.append)(word.instrument)
        changes.update(word.negated if negated else word.apply)
        if not negated:
            shift += word.tempo_shift
    choices = replace(choices, **changes)  # type: ignore[arg-type]
    named = [name for name in dict.fromkeys(named) if name not in banned]
    keys = named[0] if named else choices.keys
    if keys in banned:
        keys = next(k for k in ("rhodes", "piano", "pad", "guitar") if k not in banned)
    lead = named[1] if len(named) > 1 else choices.lead
    if lead in banned or (lead == keys and named):  # a genre may double its own sound (synthwave), a named one not
        lead = next((k for k in ("piano", "rhodes", "synth", "guitar") if k not in banned and k != keys), None)
    tempo = explicit_tempo if explicit_tempo is not None else min(max(g.tempo + shift, 56.0), 140.0)
    return replace(choices, keys=keys, lead=lead, tempo=tempo, tempo_explicit=explicit_tempo is not None)


def describe_report(report: dict[str, list[str]]) -> str:
    """``understood: chill, rain · ignored: orchestral`` (the form every client shows)."""
    parts = [f"understood: {', '.join(report.get('understood') or []) or 'nothing'}"]
    if report.get("ignored"):
        parts.append(f"ignored: {', '.join(report['ignored'])}")
    return " · ".join(parts)
