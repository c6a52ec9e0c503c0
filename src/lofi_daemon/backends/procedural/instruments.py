"""Synthesis models, one per instrument a prompt can choose. Each returns one mono note.

- rhodes: two-operator FM (a tine): the modulation index falls with time, so the bark of the
  attack mellows into a sine, plus a faint high bell partial.
- piano (felt): inharmonic partials (stiff-string stretch), higher partials die faster, a
  muffled hammer thump.
- guitar (nylon): Karplus-Strong plucked string (a delay line of one period with a damping
  average), excited by soft noise shaped by the pluck position.
- pad, strings, synth: band-limited wavetables (saw, pulse) read at the note's phase;
  detuned voices, vibrato for strings, and a filter envelope as a crossfade from a bright
  table to a dark one (cheaper than a time-varying filter, and it sounds like one).
- bass: upright as a damped plucked string with a low excitation; synth as sine plus a dark saw.

Notes depend only on their arguments (pitch, length, velocity, variant), never on a shared
random state, so they can be cached and the render stays bit-identical.
"""

from __future__ import annotations

import functools

import numpy as np

SAMPLE_RATE = 48_000
TABLE = 2048


def midi_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12.0)


def _time(length: int) -> np.ndarray:
    return np.arange(length, dtype=np.float32) / np.float32(SAMPLE_RATE)


def _release(length: int, sec: float = 0.06) -> np.ndarray:
    """A short fade at the note's end so a cut note never clicks."""
    ramp = max(1, int(sec * SAMPLE_RATE))
    out = np.ones(length, dtype=np.float32)
    k = min(ramp, length)
    out[length - k:] = np.linspace(1.0, 0.0, k, dtype=np.float32)
    return out


def _attack(length: int, sec: float) -> np.ndarray:
    k = min(length, max(1, int(sec * SAMPLE_RATE)))
    out = np.ones(length, dtype=np.float32)
    out[:k] = np.sin(np.linspace(0.0, np.pi / 2, k, dtype=np.float32)) ** 2
    return out


@functools.lru_cache(maxsize=64)
def _wavetable(shape: str, harmonics: int) -> np.ndarray:
    """One period of a band-limited waveform with ``harmonics`` partials."""
    phase = np.arange(TABLE) / TABLE
    k = np.arange(1, harmonics + 1)[:, None]
    if shape == "saw":
        weights = 1.0 / k
    elif shape == "pulse":  # 30 % duty: hollow, analog
        weights = np.sin(np.pi * k * 0.3) / k
    else:
        raise ValueError(shape)
    table = (weights * np.sin(2 * np.pi * k * phase)).sum(axis=0)
    table = (table / np.max(np.abs(table))).astype(np.float32)
    table.setflags(write=False)
    return table


def _read(table: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """The table at ``phase`` (in cycles), linearly interpolated."""
    pos = (phase % 1.0) * TABLE
    i = pos.astype(np.int32)
    frac = (pos - i).astype(np.float32)
    return table[i] * (1 - frac) + table[(i + 1) % TABLE] * frac


def _harmonics(freq: float, ceiling_hz: float) -> int:
    return int(max(1, min(60, ceiling_hz // max(freq, 1.0))))


# --- keys ----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=256)
def _rhodes_note(note: int, length: int, vel_step: int) -> np.ndarray:
    freq = midi_hz(note)
    velocity = vel_step / 8.0
    t = _time(length)
    index = (0.4 + 2.2 * velocity) * np.exp(-t * 5.0) + 0.25
    two_pi_f = np.float32(2 * np.pi * freq)
    tone = np.sin(two_pi_f * t + index * np.sin(two_pi_f * t))
    tone += (0.12 * velocity) * np.sin(two_pi_f * 7.0 * t) * np.exp(-t * 30.0)  # the tine's bell
    decay = np.exp(-t * (0.45 + freq / 900.0))
    out = (tone * decay * _attack(length, 0.003) * _release(length, 0.12)).astype(np.float32)
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=256)
def _piano_note(note: int, length: int, vel_step: int) -> np.ndarray:
    freq = midi_hz(note)
    velocity = vel_step / 8.0
    t = _time(length)
    out = np.zeros(length, dtype=np.float32)
    stiffness = 0.00035
    felt = 1200.0 + 2400.0 * velocity  # the hammer felt: softer hits have fewer highs
    for n in range(1, 10):
        fn = n * freq * np.sqrt(1.0 + stiffness * n * n)
        if fn > 12000:
            break
        amp = (1.0 / n ** 1.2) * np.exp(-fn / felt)
        rate = 0.6 + 0.9 * n + fn / 1500.0
        env = 0.75 * np.exp(-t * rate) + 0.25 * np.exp(-t * rate / 7.0)  # prompt then aftersound
        out += np.float32(amp) * np.sin(np.float32(2 * np.pi * fn) * t) * env.astype(np.float32)
    rng = np.random.Generator(np.random.PCG64(note))
    thump_len = min(length, int(0.03 * SAMPLE_RATE))
    thump = np.cumsum(rng.standard_normal(thump_len)).astype(np.float32)  # brown noise: a soft knock
    thump -= np.linspace(0, thump[-1], thump_len, dtype=np.float32) if thump_len else 0
    out[:thump_len] += 0.02 * thump * np.exp(-np.arange(thump_len, dtype=np.float32) / 200.0)
    out *= _attack(length, 0.002) * _release(length, 0.15)
    out /= max(1e-6, float(np.max(np.abs(out))))
    out.setflags(write=False)
    return out


def karplus_strong(freq: float, length: int, brightness: float, damping: float, seed: int) -> np.ndarray:
    """A plucked string: a period of noise recirculated through a two-point average.

    Computed one period at a time: each block is the previous block averaged with itself
    shifted by one sample, which is the classic recurrence y[n] = d*(y[n-P] + y[n-P-1])/2.
    """
    period = max(2, int(round(SAMPLE_RATE / freq - 0.5)))  # the average adds half a sample of delay
    rng = np.random.Generator(np.random.PCG64(seed))
    excite = rng.uniform(-1.0, 1.0, period)
    pluck = max(1, int(period * 0.18))  # plucked near the bridge: a comb on the excitation
    excite = excite - np.roll(excite, pluck) * 0.8
    for _ in range(int(round((1.0 - brightness) * 6))):  # a soft finger: smoother start
        excite = 0.5 * (excite + np.roll(excite, 1))
    blocks = -(-length // period) + 1
    out = np.empty(blocks * period)
    out[:period] = excite
    prev_last = 0.0
    for b in range(1, blocks):
        last = out[(b - 1) * period:b * period]
        shifted = np.concatenate(([prev_last], last[:-1]))
        out[b * period:(b + 1) * period] = damping * 0.5 * (last + shifted)
        prev_last = last[-1]
    return out[:length].astype(np.float32)


@functools.lru_cache(maxsize=256)
def _guitar_note(note: int, length: int, vel_step: int) -> np.ndarray:
    freq = midi_hz(note)
    velocity = vel_step / 8.0
    damping = 0.9985 - freq / 120000.0  # high strings ring shorter
    out = karplus_strong(freq, length, 0.35 + 0.5 * velocity, damping, seed=note * 31 + vel_step)
    out = out * _attack(length, 0.001) * _release(length, 0.08)
    out /= max(1e-6, float(np.max(np.abs(out))))
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=256)
def _pad_note(note: int, length: int, vel_step: int) -> np.ndarray:
    freq = midi_hz(note)
    t = _time(length)
    table = _wavetable("saw", _harmonics(freq, 3500.0))
    out = np.zeros(length, dtype=np.float32)
    for k, cents in enumerate((-7.0, 0.0, 6.0)):
        f = freq * 2 ** (cents / 1200.0)
        out += _read(table, f * t.astype(np.float64) + k / 3.0)
    out *= _attack(length, 0.45) * _release(length, 0.5) / 3.0
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=256)
def _strings_note(note: int, length: int, vel_step: int) -> np.ndarray:
    freq = midi_hz(note)
    t = _time(length).astype(np.float64)
    table = _wavetable("saw", _harmonics(freq, 6000.0))
    vibrato_depth = 0.004 * np.minimum(1.0, t / 0.6)  # vibrato grows in after the bow settles
    out = np.zeros(length, dtype=np.float32)
    for k, (cents, rate) in enumerate(((-5.0, 5.3), (5.0, 5.9))):
        f = freq * 2 ** (cents / 1200.0)
        inst = f * (1.0 + vibrato_depth * np.sin(2 * np.pi * rate * t + k))
        out += _read(table, np.cumsum(inst) / SAMPLE_RATE)
    out *= _attack(length, 0.25) * _release(length, 0.35) / 2.0
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=256)
def _synth_note(note: int, length: int, vel_step: int) -> np.ndarray:
    freq = midi_hz(note)
    velocity = vel_step / 8.0
    t = _time(length)
    t64 = t.astype(np.float64)
    bright = _wavetable("saw", _harmonics(freq, 9000.0))
    dark = _wavetable("saw", _harmonics(freq, 900.0))
    pulse = _wavetable("pulse", _harmonics(freq, 5000.0))
    sweep = (np.exp(-t * 6.0) * (0.4 + 0.6 * velocity)).astype(np.float32)  # the filter envelope
    a = _read(bright, freq * 1.003 * t64)
    b = _read(dark, freq * 0.997 * t64 + 0.5)
    tone = sweep * a + (1 - sweep) * _read(dark, freq * 1.003 * t64) + 0.6 * b + 0.35 * _read(pulse, freq * t64)
    amp = 0.8 * np.exp(-t * 0.8) + 0.2
    out = (tone * amp * _attack(length, 0.004) * _release(length, 0.1) / 2.0).astype(np.float32)
    out.setflags(write=False)
    return out


KEYS = {"rhodes": _rhodes_note, "piano": _piano_note, "guitar": _guitar_note, "pad": _pad_note,
        "strings": _strings_note, "synth": _synth_note}
# Where each instrument sits once mixed (the bus EQ keeps its character): low cut, high cut (Hz).
KEYS_BAND = {"rhodes": (90, 7000), "piano": (70, 9000), "guitar": (90, 9000), "pad": (120, 5000),
             "strings": (180, 7000), "synth": (90, 12000)}
SUSTAINED = {"pad", "strings"}


def keys_note(instrument: str, note: int, length: int, velocity: float) -> np.ndarray:
    """One note of a keys instrument at ``velocity`` 0..1 (quantised to 8 steps for the cache)."""
    step = int(min(8, max(1, round(velocity * 8))))
    return KEYS[instrument](int(note), int(length), step) * np.float32(velocity / (step / 8.0))


# --- bass ----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=128)
def _upright_note(note: int, length: int) -> np.ndarray:
    freq = midi_hz(note)
    out = karplus_strong(freq, length, 0.1, 0.9965, seed=note)
    t = _time(length)
    out = out + 0.5 * np.sin(np.float32(2 * np.pi * freq) * t) * np.exp(-t * 2.5)  # the body
    out *= _attack(length, 0.004) * _release(length, 0.06)
    out /= max(1e-6, float(np.max(np.abs(out))))
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=128)
def _synth_bass_note(note: int, length: int) -> np.ndarray:
    freq = midi_hz(note)
    t = _time(length)
    dark = _wavetable("saw", _harmonics(freq, 700.0))
    tone = np.sin(np.float32(2 * np.pi * freq) * t) + 0.45 * _read(dark, freq * t.astype(np.float64))
    amp = 0.7 * np.exp(-t * 1.5) + 0.3
    out = (tone * amp * _attack(length, 0.006) * _release(length, 0.05)).astype(np.float32)
    out /= max(1e-6, float(np.max(np.abs(out))))
    out.setflags(write=False)
    return out


def bass_note(instrument: str, note: int, length: int, velocity: float) -> np.ndarray:
    make = _upright_note if instrument == "upright" else _synth_bass_note
    return make(int(note), int(length)) * np.float32(velocity)


def clear_caches() -> None:
    """Notes are cached within a render; free them after (they are tens of MB)."""
    for fn in (_rhodes_note, _piano_note, _guitar_note, _pad_note, _strings_note, _synth_note,
               _upright_note, _synth_bass_note):
        fn.cache_clear()
