"""The embedded default: a seeded lofi generator in numpy. No weights, no download.

What it plays: a four-bar progression of 7th/9th chords on a detuned electric piano, a
round bass, soft swung drums (kick, snare, hats), a sparse pentatonic melody, vinyl
crackle and hiss, tape saturation, a gentle low-pass and a small room. Prompt words steer
tempo and mood ("chill", "jazzy", "rain", "upbeat", "sad", "80 bpm", ...).

Loop-friendly: the tempo is nudged so the track is a whole number of bars, and every
sound that rings past the end wraps around to the start (all effects are circular), so
the file loops without a seam. The same prompt, duration and seed give the same bits.
"""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass

import numpy as np

from ..cancel import CancelToken
from .base import Backend, Capabilities, GeneratedAudio, GenerationRequest, Progress

SAMPLE_RATE = 48_000
MODEL_VERSION = "procedural-2"  # 2: files keep their seamless edges (no fades)

# Scale degrees (semitones over the key root) and chord tones for the progressions.
MAJOR_PROGRESSIONS = [  # ii9 - V13 - Imaj9 - vi9 and friends
    [(2, "m9"), (7, "9"), (0, "maj9"), (9, "m9")],
    [(0, "maj9"), (9, "m9"), (2, "m9"), (7, "9")],
    [(5, "maj9"), (4, "m7"), (2, "m9"), (0, "maj9")],
]
MINOR_PROGRESSIONS = [  # i9 - iv9 - bVIImaj7 - bIIImaj9 and friends
    [(0, "m9"), (5, "m9"), (10, "9"), (3, "maj9")],
    [(0, "m9"), (8, "maj9"), (3, "maj9"), (10, "9")],
    [(0, "m7"), (5, "m9"), (8, "maj9"), (7, "m7")],
]
CHORD_TONES = {
    "maj9": (0, 4, 7, 11, 14),
    "m9": (0, 3, 7, 10, 14),
    "9": (0, 4, 7, 10, 14),
    "m7": (0, 3, 7, 10),
}
JAZZY_EXTENSIONS = {"maj9": (0, 4, 7, 11, 14, 21), "m9": (0, 3, 7, 10, 14, 17), "9": (0, 4, 10, 14, 21),
                    "m7": (0, 3, 7, 10, 14)}


@dataclass(frozen=True)
class Style:
    bpm: float
    minor: bool
    jazzy: bool
    rain: bool
    crackle: float  # vinyl noise level
    drums: float  # 0 = no drums
    swing: float  # delay of off-beat 8ths as a fraction of an 8th
    cutoff_hz: float


def style_from_prompt(prompt: str) -> Style:
    words = prompt.lower()

    def has(*keys: str) -> bool:
        return any(re.search(rf"\b{k}", words) for k in keys)

    bpm = 78.0
    if has("chill", "relax", "sleep", "calm", "mellow", "study", "slow"):
        bpm = 72.0
    if has("rain", "night", "ambient"):
        bpm -= 4.0
    if has("upbeat", "energetic", "happy", "fast", "groov", "dance"):
        bpm = 92.0
    explicit = re.search(r"\b(\d{2,3})\s*(?:bpm)?\b", words)
    if explicit and 50 <= int(explicit.group(1)) <= 160:
        bpm = float(explicit.group(1))
    minor = has("sad", "melanchol", "dark", "moody", "night", "rain", "lonely", "minor")
    if has("happy", "bright", "sunny", "major", "upbeat"):
        minor = False
    drums = 0.0 if has("no drums", "ambient", "beatless") else (1.2 if has("boom bap", "hip hop", "hip-hop", "beat") else 1.0)
    return Style(
        bpm=bpm,
        minor=minor,
        jazzy=has("jazz"),
        rain=has("rain", "storm"),
        crackle=1.6 if has("vinyl", "crackle", "record", "dusty") else 1.0,
        drums=drums,
        swing=0.58 if has("jazz", "swing") else 0.52,
        cutoff_hz=3800.0 if has("muffled", "underwater", "sleep", "warm") else 6500.0,
    )


class ProceduralBackend(Backend):
    name = "procedural"
    model_version = MODEL_VERSION
    has_weights = False

    def __init__(self, settings: object = None, store: object = None) -> None:
        pass

    def capabilities(self) -> Capabilities:
        return Capabilities(
            min_duration_sec=5.0,
            max_duration_sec=240.0,
            sample_rate=SAMPLE_RATE,
            parameters=(),
            description="Built-in lofi generator (no download). Prompt words steer tempo and mood.",
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

    def generate(self, request: GenerationRequest, progress: Progress, cancel: CancelToken) -> GeneratedAudio:
        return render(request.prompt, request.duration_sec, request.seed, progress, cancel)


# ----------------------------------------------------------------------------------------------
def render(prompt: str, duration_sec: float, seed: int, progress: Progress, cancel: CancelToken) -> GeneratedAudio:
    style = style_from_prompt(prompt)
    rng = np.random.Generator(np.random.PCG64(seed))
    n = int(round(duration_sec * SAMPLE_RATE))
    bars, bpm = _fit_bars(duration_sec, style.bpm)
    beat = n / (bars * 4)  # samples per beat, exact so the loop closes
    prog_pool = MINOR_PROGRESSIONS if style.minor else MAJOR_PROGRESSIONS
    progression = prog_pool[int(rng.integers(len(prog_pool)))]
    key_root = 45 + int(rng.integers(0, 12))  # A2..G#3 as the tonic for voicings around middle C
    melody_seed, drum_seed, noise_seed, vinyl_seed = (int(x) for x in rng.integers(0, 2**62, size=4))

    # Progress weights are seconds measured on this machine, now: the hiss costs one
    # full-length FFT pair, which prices the mastering stages; the first bar prices the bars
    # (re-measured as they go). A fixed table would be off by 10+ points on another CPU.
    started = time.perf_counter()
    vinyl_rng = np.random.Generator(np.random.PCG64(vinyl_seed))
    hiss = rng_noise_lowpassed(n, vinyl_rng, 5000.0)
    fft_pair_sec = time.perf_counter() - started
    crackle = _vinyl(hiss, vinyl_rng) * style.crackle

    music = np.zeros(n, dtype=np.float64)
    bass = np.zeros(n, dtype=np.float64)
    drums = np.zeros(n, dtype=np.float64)
    duck = np.ones(n, dtype=np.float64)
    mel_rng = np.random.Generator(np.random.PCG64(melody_seed))
    drum_rng = np.random.Generator(np.random.PCG64(drum_seed))

    def render_bar(bar: int) -> None:
        degree, quality = progression[bar % len(progression)]
        start = bar * 4 * beat
        root = key_root + degree
        tones = (JAZZY_EXTENSIONS if style.jazzy else CHORD_TONES)[quality]
        _chord(music, start, 4 * beat, root, tones, mel_rng)
        _bassline(bass, start, beat, root - 12, mel_rng)
        _melody(music, start, beat, key_root + 12, style.minor, mel_rng)
        if style.drums > 0:
            _drum_bar(drums, duck, start, beat, style, drum_rng)

    bar_started = time.perf_counter()
    render_bar(0)  # timed: it prices the rest
    bar_sec = time.perf_counter() - bar_started
    compose_sec = bar_started - started
    # Larger arrays fall out of cache: the mastering grows faster than the one FFT that priced it.
    master_sec = 1.1 * fft_pair_sec * sum(MASTER_COST.values()) * (n / 2_880_000) ** 0.3

    def replan(bar_sec: float) -> None:
        progress.plan([("compose", compose_sec), ("bars", bar_sec * bars), ("master", master_sec)])

    replan(bar_sec)
    progress.update("compose", 1, 1)
    progress.update("bars", 1, bars)
    bars_started = bar_started
    for bar in range(1, bars):
        cancel.check(bar, bars)
        replan((time.perf_counter() - bars_started) / bar)
        render_bar(bar)
        progress.update("bars", bar + 1, bars)

    stereo = _master(music, bass, drums, duck, crackle, style, noise_seed, progress, cancel, bars)
    return GeneratedAudio(
        samples=stereo.astype(np.float32),
        sample_rate=SAMPLE_RATE,
        metadata={"device": "cpu", "dtype": "float64", "bpm": round(bpm, 2), "bars": bars,
                  "minor": style.minor, "numpy": np.__version__},
        loopable=True,
    )


# Cost of each mastering stage in units of one full-length FFT pair (the hiss), measured
# with bench/bench_procedural.py; the ratios hold across track lengths and machine load.
MASTER_COST = {"spectra": 1.5, "left": 1.7, "right": 1.8, "level": 1.0}


def _fit_bars(duration_sec: float, bpm: float) -> tuple[int, float]:
    """A whole number of bars near ``bpm``; returns (bars, adjusted bpm)."""
    bar_sec = 4 * 60.0 / bpm
    bars = max(1, round(duration_sec / bar_sec))
    return bars, bars * 4 * 60.0 / duration_sec


def _midi_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12.0)


def _add_wrapped(buf: np.ndarray, start: float, sound: np.ndarray) -> None:
    """Add ``sound`` at sample ``start``; what rings past the end wraps to the start."""
    n = buf.shape[-1]
    i = int(start) % n
    m = min(sound.shape[-1], n)
    first = min(m, n - i)
    buf[..., i:i + first] += sound[..., :first]
    if m > first:
        buf[..., :m - first] += sound[..., first:m]


@functools.lru_cache(maxsize=4)
def _epiano_shapes(size: int) -> tuple[np.ndarray, ...]:
    """The parts of an e-piano note that depend on time only, computed once for notes up to
    ``size`` samples and sliced per note (the same numbers each time, 3x less work per note)."""
    t = np.arange(size) / SAMPLE_RATE
    shapes = (t, np.exp(-t * 3.0), np.exp(-t * 6.0), np.exp(-t * 25.0),
              (1 - np.exp(-t * 250.0)) * np.exp(-t * 1.1), 1.0 + 0.08 * np.sin(2 * np.pi * 4.5 * t))
    for shape in shapes:
        shape.setflags(write=False)
    return shapes


def _epiano(freq: float, length: int, velocity: float, rng: np.random.Generator) -> np.ndarray:
    """A soft electric-piano tone: detuned partials, bell-ish attack, slow decay, tremolo."""
    size = 1 << max(17, (length - 1).bit_length())  # few distinct tables however long the notes
    t, decay2, decay3, decay7, env, tremolo = (shape[:length] for shape in _epiano_shapes(size))
    detune = 1.0 + rng.uniform(-0.0015, 0.0015)
    tone = (np.sin(2 * np.pi * freq * detune * t)
            + 0.35 * np.sin(2 * np.pi * 2 * freq * t) * decay2
            + 0.12 * np.sin(2 * np.pi * 3.01 * freq * t) * decay3
            + 0.05 * np.sin(2 * np.pi * 7.0 * freq * t) * decay7)
    release = np.minimum(1.0, (length - np.arange(length)) / (0.08 * SAMPLE_RATE))
    return velocity * tone * env * release * tremolo


def _chord(buf: np.ndarray, start: float, length: float, root: int, tones: tuple[int, ...],
           rng: np.random.Generator) -> None:
    hold = int(length * rng.uniform(0.9, 1.05))
    for k, interval in enumerate(tones):
        note = root + interval
        while note > 76:  # keep the voicing in the warm middle register
            note -= 12
        strum = k * rng.uniform(0.004, 0.012) * SAMPLE_RATE  # a lazy roll, low to high
        velocity = 0.12 * rng.uniform(0.8, 1.0)
        _add_wrapped(buf, start + strum, _epiano(_midi_hz(note), hold, velocity, rng))
    if rng.random() < 0.5:  # a soft re-hit on the "and" of 3 now and then
        for interval in tones[1:4]:
            _add_wrapped(buf, start + length * 0.625, _epiano(_midi_hz(root + interval), int(length * 0.3), 0.07, rng))


def _bassline(buf: np.ndarray, start: float, beat: float, root: int, rng: np.random.Generator) -> None:
    while root > 45:
        root -= 12
    hits = [(0.0, 0, 1.5), (2.5, 0, 1.0), (3.5, 7 if rng.random() < 0.5 else 12, 0.45)]
    for pos, interval, beats in hits:
        length = int(beats * beat)
        t = np.arange(length) / SAMPLE_RATE
        freq = _midi_hz(root + interval)
        tone = np.sin(2 * np.pi * freq * t) + 0.25 * np.sin(4 * np.pi * freq * t)
        env = (1 - np.exp(-t * 120.0)) * np.exp(-t * 1.8) * np.minimum(1.0, (length - np.arange(length)) / 800.0)
        _add_wrapped(buf, start + pos * beat, 0.38 * tone * env)


def _melody(buf: np.ndarray, start: float, beat: float, tonic: int, minor: bool, rng: np.random.Generator) -> None:
    scale = (0, 3, 5, 7, 10) if minor else (0, 2, 4, 7, 9)
    for eighth in range(8):
        if rng.random() > 0.22:
            continue
        note = tonic + scale[int(rng.integers(len(scale)))] + (12 if rng.random() < 0.3 else 0)
        length = int(beat * rng.choice([0.5, 1.0, 1.5]))
        t = np.arange(length) / SAMPLE_RATE
        freq = _midi_hz(note)
        tone = np.sin(2 * np.pi * freq * t + 0.6 * np.sin(2 * np.pi * freq * t)) * np.exp(-t * 2.5)
        tone *= (1 - np.exp(-t * 400.0)) * np.minimum(1.0, (length - np.arange(length)) / 600.0)
        _add_wrapped(buf, start + eighth * beat / 2, 0.07 * tone)


def _drum_bar(buf: np.ndarray, duck: np.ndarray, start: float, beat: float, style: Style,
              rng: np.random.Generator) -> None:
    eighth = beat / 2
    for step in range(8):
        pos = start + step * eighth + (style.swing - 0.5) * 2 * eighth * (step % 2)
        humanize = rng.normal(0, 0.004) * SAMPLE_RATE
        if step in (0, 5) or (step == 3 and rng.random() < 0.35):
            _add_wrapped(buf, pos + humanize, style.drums * _kick(rng))
            _add_wrapped(duck, pos, _duck_envelope(beat))
        if step in (2, 6):
            _add_wrapped(buf, pos + humanize, style.drums * _snare(rng))
        if rng.random() < 0.9:
            accent = 1.0 if step % 2 == 0 else 0.6
            _add_wrapped(buf, pos + humanize, style.drums * accent * _hat(rng))


def _kick(rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.35 * SAMPLE_RATE)) / SAMPLE_RATE
    freq = 48.0 + 90.0 * np.exp(-t * 30.0)
    phase = 2 * np.pi * np.cumsum(freq) / SAMPLE_RATE
    return 0.75 * rng.uniform(0.85, 1.0) * np.sin(phase) * np.exp(-t * 9.0)


def _snare(rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.25 * SAMPLE_RATE)) / SAMPLE_RATE
    noise = rng.standard_normal(t.size)
    noise = np.convolve(noise, np.array([0.5, 0.0, -0.5]), mode="same")  # thin out the lows
    body = np.sin(2 * np.pi * 185.0 * t) * np.exp(-t * 25.0)
    return 0.5 * rng.uniform(0.8, 1.0) * (0.7 * noise * np.exp(-t * 18.0) + 0.5 * body)


def _hat(rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.06 * SAMPLE_RATE)) / SAMPLE_RATE
    noise = np.diff(rng.standard_normal(t.size + 1))  # crude high-pass
    return 0.09 * rng.uniform(0.7, 1.0) * noise * np.exp(-t * 70.0)


def _duck_envelope(beat: float) -> np.ndarray:
    """Sidechain pump: the keys dip under each kick, the lofi 'breathing'."""
    t = np.arange(int(beat)) / SAMPLE_RATE
    return -0.35 * np.exp(-t * 8.0)


def _master(music: np.ndarray, bass: np.ndarray, drums: np.ndarray, duck: np.ndarray, crackle: np.ndarray,
            style: Style, noise_seed: int, progress: Progress, cancel: CancelToken, bars: int) -> np.ndarray:
    """Room, stereo width, rain and the low-pass in one pass over the spectrum, then tape warmth.

    Everything linear happens in the frequency domain: 6 full-length FFTs in all, and the
    result is circular, so the loop point stays seamless.
    """
    n = music.size
    rng = np.random.Generator(np.random.PCG64(noise_seed))
    # Progress inside the phase is in thousandths of its cost, so uneven stages report honestly.
    total = sum(MASTER_COST.values())
    done = 0.0

    def step(stage: str) -> None:
        nonlocal done
        done += MASTER_COST[stage]
        progress.update("master", round(1000 * done / total), 1000)
        cancel.check(bars, bars)

    # float32 from here: numpy's FFT then runs in single precision, twice as fast.
    keys = (music * np.clip(duck, 0.5, 1.0)).astype(np.float32)
    rest = (0.9 * bass + 0.85 * drums).astype(np.float32) + crackle
    keys_f, rest_f = np.fft.rfft(keys), np.fft.rfft(rest)
    freqs = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE).astype(np.float32)
    tone = _lowpass_response(freqs, style.cutoff_hz)
    step("spectra")
    channels = []
    for side in ("left", "right"):
        spectrum = keys_f * (1.0 + 0.35 * _room_response(n, rng)) + rest_f
        if side == "right":  # the keys 2 ms later on the right: Haas width
            spectrum += keys_f * (np.exp(-2j * np.pi * freqs * (96 / SAMPLE_RATE)) - 1.0)
        if style.rain:
            spectrum += _rain_spectrum(freqs, rng)
        channels.append(np.fft.irfft(spectrum * tone, n))
        step(side)
    stereo = np.stack(channels)
    stereo = np.tanh(1.3 * stereo) / np.tanh(1.3)  # tape warmth: soft saturation
    peak = float(np.max(np.abs(stereo))) or 1.0
    stereo *= 0.89 / peak  # about -1 dBFS, never clipped
    step("level")
    return stereo


def _room_response(n: int, rng: np.random.Generator) -> np.ndarray:
    """A small room: the spectrum of 1.6 s of decaying noise (each side its own tail)."""
    ir_len = min(n, int(1.6 * SAMPLE_RATE))
    t = np.arange(ir_len, dtype=np.float32) / SAMPLE_RATE
    ir = np.zeros(n, dtype=np.float32)
    ir[:ir_len] = rng.standard_normal(ir_len, dtype=np.float32) * np.exp(-t * 3.2) * 0.02
    return np.fft.rfft(ir)


def _rain_spectrum(freqs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Soft rain: white noise drawn directly as a spectrum (no FFT), shaped by a low-pass."""
    n = 2 * (freqs.size - 1)
    scale = 0.03 * np.sqrt(n / 2)  # the rfft of unit white noise has bins of variance n
    noise = rng.standard_normal(freqs.size, dtype=np.float32) + 1j * rng.standard_normal(freqs.size, dtype=np.float32)
    return noise * scale * _lowpass_response(freqs, 2500.0)


def rng_noise_lowpassed(n: int, rng: np.random.Generator, cutoff_hz: float) -> np.ndarray:
    """Soft noise: one full-length FFT pair, which also prices the mastering on this machine."""
    return _lowpass(rng.standard_normal(n, dtype=np.float32)[None], cutoff_hz)[0]


def _vinyl(hiss: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Record surface: soft hiss plus sparse clicks and pops."""
    n = hiss.size
    hiss = hiss * 0.006
    pops = np.zeros(n, dtype=np.float32)
    count = max(1, int(n / SAMPLE_RATE * 6))
    where = rng.integers(0, n, size=count)
    pops[where] = rng.uniform(-1.0, 1.0, size=count) * rng.uniform(0.05, 0.25, size=count)
    click = np.exp(-np.arange(48) / 6.0)
    pops = np.convolve(np.concatenate([pops[-47:], pops]), click, mode="valid")
    return hiss + 0.5 * pops


def _lowpass(audio: np.ndarray, cutoff_hz: float) -> np.ndarray:
    """Gentle 2nd-order-like low-pass applied in the frequency domain (circular, so loop-safe)."""
    n = audio.shape[-1]
    response = _lowpass_response(np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE), cutoff_hz)
    return np.fft.irfft(np.fft.rfft(audio, axis=-1) * response, n, axis=-1).astype(audio.dtype)


def _lowpass_response(freqs: np.ndarray, cutoff_hz: float) -> np.ndarray:
    return (1.0 / np.sqrt(1.0 + (freqs / cutoff_hz) ** 4)).astype(np.float32)
