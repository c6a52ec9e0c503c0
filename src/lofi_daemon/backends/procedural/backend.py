"""The procedural backend: the prompt's choices, the seed's song, rendered bar by bar, mixed.

``render`` reads as its steps: parse the prompt, fit the tempo, draw the song (key,
progressions, motifs, groove) from the seed, plan the form, play every bar into stems,
then mix and master. Randomness comes from one seeded generator split into independent
streams in a fixed order, so the same request gives the same bits.
"""

from __future__ import annotations

import time

import numpy as np

from ...cancel import CancelToken
from ..base import Backend, Capabilities, GeneratedAudio, GenerationRequest, ParamSpec, Progress
from . import form, groove, harmony, instruments, melody, mix
from .continuation import Keep, assemble, plan_continuation
from .harmony import KEY_NAMES
from .kit import build_kit
from .tempo import fit
from .vocabulary import Choices, parse_prompt

SAMPLE_RATE = instruments.SAMPLE_RATE
MODEL_VERSION = "procedural-3"  # 3: form, groove, instrument models, loudness-targeted mix
MIN_SEC, MAX_SEC = 5.0, 240.0
SECTION_OFFSET = ParamSpec(
    "section_offset", "int", 0, minimum=0, maximum=10_000,
    description="Start the seed's song at this section (0 = its intro); a track's metadata names "
                "next_section_offset, so the same prompt and seed continue the song in the same key and tempo.")
# Mix cost in units of one full-length FFT, measured with bench/bench_procedural.py (weights progress).
MIX_COST = {"tape": 3.9, "spectra": 4.1, "room": 4.9, "side0": 1.5, "side1": 1.5, "glue": 3.9, "level": 5.7}


class ProceduralBackend(Backend):
    name = "procedural"
    model_version = MODEL_VERSION
    has_weights = False

    def __init__(self, settings: object = None, store: object = None) -> None:
        pass

    def capabilities(self) -> Capabilities:
        return Capabilities(
            min_duration_sec=MIN_SEC,
            max_duration_sec=MAX_SEC,
            sample_rate=SAMPLE_RATE,
            parameters=(SECTION_OFFSET,),
            description="Built-in lofi generator (no download). Genre, instrument, mood, texture and "
                        "tempo words choose the music; :help lofi-procedural lists them.",
            continues_audio=True,  # its next section, in the source's key and tempo (continuation.py)
        )

    def is_installed(self) -> bool:
        return True

    @property
    def loaded(self) -> bool:
        return True  # nothing to load: always ready

    def load(self, device: object) -> None:
        pass

    def unload(self) -> None:
        pass

    def read_prompt(self, prompt: str) -> dict[str, list[str]]:
        """The words of ``prompt`` this backend understands and the ones it ignores (cheap: no render)."""
        return parse_prompt(prompt).report()

    def generate(self, request: GenerationRequest, progress: Progress, cancel: CancelToken) -> GeneratedAudio:
        offset = int(request.params.get("section_offset", 0) or 0)
        if request.continue_from is not None:  # the source's song goes on (continuation.py)
            plan = plan_continuation(request, MODEL_VERSION, offset)
            new = render(request.prompt, plan.new_sec, plan.seed, progress, cancel, section_offset=plan.section_offset,
                         keep=plan.keep)
            return assemble(plan, new)
        return render(request.prompt, request.duration_sec, request.seed, progress, cancel, section_offset=offset)


def song_tempo(prompt: str, seed: int, duration_sec: float) -> float:
    """The tempo (bpm) a track of this prompt, seed and length plays at, without rendering it."""
    song = _Song(parse_prompt(prompt), seed)
    return fit(duration_sec, song.tempo, SAMPLE_RATE, MIN_SEC, MAX_SEC).bpm


class _Song:
    """What the seed decides within the prompt's pool: key, mode, tempo, progressions, motifs, feel."""

    def __init__(self, choices: Choices, seed: int, keep: Keep = Keep()) -> None:
        rng = np.random.Generator(np.random.PCG64(seed))
        self.minor = bool(rng.random() < 0.5) if choices.minor is None else choices.minor
        self.tonic = 45 + int(rng.integers(0, 12))  # A2..G#3
        jitter = 0.0 if choices.tempo_explicit else float(rng.uniform(-3.0, 3.0))
        self.tempo = round(choices.tempo + jitter, 1)
        # Kept values replace the drawn ones after the draws, so the streams below stay the seed's.
        self.minor = self.minor if keep.minor is None else keep.minor
        self.tonic = self.tonic if keep.tonic is None else keep.tonic
        self.tempo = self.tempo if keep.bpm is None else keep.bpm
        # Independent streams, drawn in a fixed order: a change in one part never shifts another.
        streams = rng.integers(0, 2**62, size=6)
        self.form_rng, self.motif_rng, self.play_rng, self.drum_rng, self.kit_rng, self.mix_rng = (
            np.random.Generator(np.random.PCG64(int(s))) for s in streams)
        self.pool = harmony.pool_for(choices.harmony, self.minor)
        self.motifs = {"A": melody.draw_motif(self.motif_rng, choices.density),
                       "B": melody.draw_motif(self.motif_rng, choices.density)}
        self.comp = int(self.motif_rng.integers(3))  # the keys' comping pattern
        self.feel = groove.choose_feel(choices.kit, choices.swing, choices.energy, self.drum_rng) if choices.kit else None


def render(prompt: str, duration_sec: float, seed: int, progress: Progress, cancel: CancelToken,
           section_offset: int = 0, keep: Keep = Keep()) -> GeneratedAudio:
    started = time.perf_counter()
    choices = parse_prompt(prompt)
    song = _Song(choices, seed, keep)
    grid = fit(duration_sec, song.tempo, SAMPLE_RATE, MIN_SEC, MAX_SEC)
    n, beat = grid.frames, grid.beat_frames
    bars, next_offset = form.plan_bars(grid.bars, section_offset, song.pool, song.form_rng)
    kit = build_kit(choices.kit, song.kit_rng) if choices.kit else {}
    probe = time.perf_counter()
    np.fft.rfft(np.zeros(n, dtype=np.float32))  # one FFT of this length prices the mix on this machine
    fft_sec = time.perf_counter() - probe
    compose_sec = time.perf_counter() - started

    player = _Player(choices, song, kit, n, beat, grid.beats)
    bar_started = time.perf_counter()
    player.play(bars[0])
    bar_sec = time.perf_counter() - bar_started
    mix_sec = fft_sec * sum(MIX_COST.values())

    def replan(per_bar: float) -> None:
        progress.plan([("compose", compose_sec), ("bars", per_bar * len(bars)), ("master", mix_sec)])

    replan(bar_sec)
    progress.update("compose", 1, 1)
    progress.update("bars", 1, len(bars))
    for k in range(1, len(bars)):
        cancel.check(k, len(bars))
        replan((time.perf_counter() - bar_started) / k)
        player.play(bars[k])
        progress.update("bars", k + 1, len(bars))
    instruments.clear_caches()

    done = 0.0
    total = sum(MIX_COST.values())

    def step(stage: str) -> None:
        nonlocal done
        done += MIX_COST[stage]
        progress.update("master", round(1000 * done / total), 1000)
        cancel.check(len(bars), len(bars))

    stems = mix.Stems(keys=player.keys, lead=player.lead, bass=player.bass, drums=player.drums,
                      duck=np.clip(1.0 + player.duck, 0.55, 1.0).astype(np.float32),
                      filter_curve=_filter_curve(bars, n, beat))
    settings = mix.MixSettings(
        keys_band=instruments.KEYS_BAND[choices.keys],
        lead_band=instruments.KEYS_BAND[choices.lead] if choices.lead else (200, 8000),
        bass_upright=choices.bass == "upright", kit=choices.kit, cutoff_hz=choices.cutoff_hz,
        tape=choices.tape, vinyl=choices.vinyl, rain=choices.rain, room=1.0 if choices.genre != "ambient" else 1.8)
    active = {layer: float(np.mean([b.levels[layer] > 0 for b in bars])) for layer in ("lead", "bass", "drums", "keys")}
    stereo, levels = mix.master(stems, active, settings, song.mix_rng, step)
    report = choices.report()
    return GeneratedAudio(
        samples=stereo,
        sample_rate=SAMPLE_RATE,
        metadata={"device": "cpu", "dtype": "float32", "numpy": np.__version__,
                  "bpm": round(grid.bpm, 3), "asked_bpm": song.tempo, "beats": grid.beats, "bars": grid.bars,
                  "key": KEY_NAMES[song.tonic % 12] + (" minor" if song.minor else " major"), "minor": song.minor,
                  "genre": choices.genre, "instruments": {"keys": choices.keys, "lead": choices.lead,
                                                          "bass": choices.bass, "drums": choices.kit},
                  "sections": [[s.section.name, s.index] for s in bars if s.bar_in_section == 0],
                  "section_offset": section_offset, "next_section_offset": next_offset,
                  "levels": levels},
        loopable=True,
        prompt_report=report,
    )


def _filter_curve(bars: list[form.BarPlan], n: int, beat: float) -> np.ndarray:
    """Per sample, how closed the master filter is: the intro opens, breaks close, the outro dims."""
    curve = np.zeros(n, dtype=np.float32)
    for plan in bars:
        start = int(plan.index * 4 * beat)
        end = min(n, int((plan.index + 1) * 4 * beat))
        amount = plan.levels["filter"]
        if plan.section.name == "intro":
            amount *= 1.0 - plan.bar_in_section / max(1, plan.section.bars)
        elif plan.section.name == "outro":
            amount *= (plan.bar_in_section + 1) / plan.section.bars
        curve[start:end] = amount
    return mix.smooth_circular(curve, int(beat))


class _Player:
    """Plays bars into the stems. Every sound that rings past the end wraps to the start."""

    def __init__(self, choices: Choices, song: _Song, kit: dict[str, list[np.ndarray]], n: int, beat: float,
                 beats: float) -> None:
        self.c, self.song, self.kit, self.n, self.beat, self.beats = choices, song, kit, n, beat, beats
        self.keys = np.zeros(n, dtype=np.float32)
        self.lead = np.zeros(n, dtype=np.float32)
        self.bass = np.zeros(n, dtype=np.float32)
        self.drums = np.zeros(n, dtype=np.float32)
        self.duck = np.zeros(n, dtype=np.float32)
        self.rng = song.play_rng
        self.scale = harmony.scale_notes(song.tonic, song.minor, 62, 90)
        self.last_lead = song.tonic + 24
        t = np.arange(int(beat), dtype=np.float32) / SAMPLE_RATE
        self.dip = (-0.4 * np.exp(-t * 9.0)).astype(np.float32)

    def _add(self, buf: np.ndarray, at: float, sound: np.ndarray) -> None:
        i = int(at) % self.n
        m = min(sound.size, self.n)
        first = min(m, self.n - i)
        buf[i:i + first] += sound[:first]
        if m > first:
            buf[:m - first] += sound[first:m]

    def play(self, plan: form.BarPlan) -> None:
        start_beat = plan.index * 4.0
        bar_beats = min(4.0, self.beats - start_beat)
        split = len(plan.chords)
        chord_beats = 4.0 / split
        for k, (degree, quality) in enumerate(plan.chords):
            at = start_beat + k * chord_beats
            length = min(chord_beats, bar_beats - k * chord_beats)
            if length <= 0:
                continue
            root = self.song.tonic + degree
            tones = harmony.chord_tones(quality, self.song.pool.colour)
            voicing = harmony.voice(root, tones)
            if plan.levels["keys"] > 0:
                self._keys(voicing, at, length, plan.levels["keys"], k)
            if plan.levels["bass"] > 0 and self.c.bass:
                self._bass(root, tones, at, length, plan.levels["bass"])
        if plan.levels["lead"] > 0 and self.c.lead:
            self._melody(plan, start_beat, bar_beats)
        if plan.levels["drums"] > 0 and self.song.feel is not None:
            self._drums(plan, start_beat, bar_beats)

    # --- parts ---------------------------------------------------------------------------
    def _keys(self, voicing: list[int], at: float, length: float, level: float, k: int) -> None:
        inst = self.c.keys
        rng = self.rng
        vel = 0.55 * level
        if inst in instruments.SUSTAINED:  # legato: the chord holds into the next one
            for note in voicing:
                self._note(self.keys, inst, note, at, length + 0.5, vel * 0.8)
            return
        if inst == "guitar":  # fingerpicking in eighths: low note on the beat, the others between
            order = [voicing[0], voicing[-1], voicing[len(voicing) // 2], voicing[-1]]
            for e in range(int(length * 2)):
                note = order[e % len(order)]
                self._note(self.keys, inst, note, at + e * 0.5 + self._swing(e), max(1.0, length - e * 0.5), vel * (1.0 if e % 2 == 0 else 0.75))
            return
        if inst == "synth":  # pulsing chords on every beat
            for b in range(int(np.ceil(length))):
                for note in voicing[:4]:
                    self._note(self.keys, inst, note, at + b, 0.85, vel * (1.0 if b % 2 == 0 else 0.8))
            return
        # rhodes, piano: a rolled chord, held, with a softer re-hit so the bar never dies away
        for j, note in enumerate(voicing):
            roll = j * float(rng.uniform(0.012, 0.03))
            self._note(self.keys, inst, note, at + roll, length + 0.1, vel * float(rng.uniform(0.85, 1.0)))
        rehits = ((1.5,), (2.0,), (1.5, 3.0))[self.song.comp]
        for r in rehits:
            if r < length:
                for note in voicing[1:4]:
                    self._note(self.keys, inst, note, at + r, length - r + 0.1, vel * 0.6)

    def _bass(self, root: int, tones: tuple[int, ...], at: float, length: float, level: float) -> None:
        note = root
        while note > 45:
            note -= 12
        fifth = note + (7 if 7 in tones or 6 not in tones else 6)
        vel = 0.8 * level
        if self.c.bass == "upright" and self.c.genre == "jazz":  # walking quarters
            third = note + (3 if 3 in tones else 4)
            walk = [note, third, fifth, note + 10 if 10 in tones else fifth + 2]
            for b in range(int(np.ceil(length))):
                self._bass_note(walk[b % 4], at + b, 0.95, vel * (1.0 if b == 0 else 0.85))
            return
        if self.c.genre == "synthwave":  # driving eighths on the root
            for e in range(int(length * 2)):
                self._bass_note(note + (12 if e % 4 == 3 else 0), at + e * 0.5, 0.45, vel * (1.0 if e % 2 == 0 else 0.8))
            return
        hits = [(0.0, note, min(1.5, length)), (2.5, note, 0.9), (3.5, fifth if self.rng.random() < 0.5 else note + 12, 0.45)]
        if length <= 2.0:
            hits = [(0.0, note, length)]
        for pos, pitch, beats in hits:
            if pos < length:
                self._bass_note(pitch, at + pos + self._swing(int(pos * 4)), beats, vel)

    def _melody(self, plan: form.BarPlan, start_beat: float, bar_beats: float) -> None:
        section = plan.section.name
        motif = self.song.motifs["B" if plan.progression == "B" else "A"]
        degree, quality = plan.chords[0]
        chord = harmony.voice(self.song.tonic + degree, harmony.chord_tones(quality, self.song.pool.colour), 64, 88)
        octave_up = section == "B" and plan.bar_in_section >= 4
        thin = section in ("break", "drop", "outro") or self.c.density < 0.35
        notes, self.last_lead = melody.phrase_bar(motif, plan.bar_in_section % 4, chord, self.scale, self.last_lead,
                                                  octave_up, thin, self.rng)
        for note in notes:
            if note.beat < bar_beats:
                at = start_beat + note.beat + self._swing(int(round(note.beat * 4)))
                self._note(self.lead, self.c.lead, note.midi, at, note.length, note.velocity * 0.5 * plan.levels["lead"])

    def _drums(self, plan: form.BarPlan, start_beat: float, bar_beats: float) -> None:
        feel = self.song.feel
        assert feel is not None
        busy = plan.section.name == "B" or (plan.bar_in_section % 4 == 3)
        level = plan.levels["drums"] * (0.75 + 0.35 * self.c.energy)
        outro = plan.section.name == "outro"
        for hit in groove.bar_hits(feel, plan.bar_in_section, busy, plan.ending, bar_beats, self.song.drum_rng):
            if outro and hit.sound in ("snare", "ghost") and plan.bar_in_section >= 2:
                continue  # the outro thins out toward the intro it loops into
            sounds = self.kit.get(hit.sound)
            if not sounds:
                continue
            at = (start_beat + hit.beat) * self.beat
            self._add(self.drums, at, sounds[hit.variant % len(sounds)] * np.float32(hit.velocity * level * 0.8))
            if hit.sound == "kick":
                self._add(self.duck, at, self.dip * np.float32(hit.velocity))

    # --- helpers -------------------------------------------------------------------------
    def _swing(self, sixteenth: int) -> float:
        """Extra beats for an odd sixteenth under this song's swing."""
        return (self.c.swing - 0.5) * 0.5 if sixteenth % 2 == 1 else 0.0

    def _note(self, buf: np.ndarray, inst: str, note: int, at_beat: float, beats: float, velocity: float) -> None:
        length = max(256, int(beats * self.beat))
        self._add(buf, at_beat * self.beat, instruments.keys_note(inst, note, length, velocity))

    def _bass_note(self, note: int, at_beat: float, beats: float, velocity: float) -> None:
        length = max(256, int(beats * self.beat))
        assert self.c.bass is not None
        self._add(self.bass, at_beat * self.beat, instruments.bass_note(self.c.bass, note, length, velocity))
