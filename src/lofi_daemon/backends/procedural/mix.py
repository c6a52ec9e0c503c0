"""From stems to a finished loop: tape, buses, room, balance, glue, loudness, true peak.

Every stage is circular (FFT filters, wrapped windows, modulations with a whole number of
cycles over the track), so the end still flows into the start. The chain:

1. tape on the keys and melody: wow (0.5 Hz) and flutter (~6 Hz) as a moving read position,
   high-frequency loss as a low-pass;
2. buses in the spectrum: each stem's band (the instrument's EQ), the dusty drum bus
   (saturation, a band-limit), the room (per-side noise reverb tails), Haas width on the keys;
3. balance: stems set by their K-weighted loudness (BS.1770) relative to the keys, which lead;
4. the master filter automation (filter-down breaks, the intro opening) as a crossfade to a
   low-passed copy; textures (vinyl, rain) join after it;
5. a gentle bus compressor (2 dB or so on the loud sections, the quiet ones untouched);
6. loudness to TARGET_LUFS integrated (gated as BS.1770-4) and a look-ahead true-peak
   limiter at PEAK_CEILING_DBTP (4x oversampled), iterated so both hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .instruments import SAMPLE_RATE

TARGET_LUFS = -14.0
PEAK_CEILING_DBTP = -1.3  # the promise is -1 dBTP; the margin covers peaks between 4x points


# --- filters as frequency responses (the same numbers for every call: bit-identical) ---------
def lowpass(freqs: np.ndarray, cutoff_hz: float, order: int = 2) -> np.ndarray:
    return (1.0 / np.sqrt(1.0 + (freqs / cutoff_hz) ** (2 * order))).astype(np.float32)


def highpass(freqs: np.ndarray, cutoff_hz: float, order: int = 2) -> np.ndarray:
    return (1.0 / np.sqrt(1.0 + (cutoff_hz / np.maximum(freqs, 1e-3)) ** (2 * order))).astype(np.float32)


def _biquad_response(b: tuple[float, float, float], a: tuple[float, float, float], freqs: np.ndarray) -> np.ndarray:
    z = np.exp(-1j * 2 * np.pi * freqs / SAMPLE_RATE)
    return (b[0] + b[1] * z + b[2] * z * z) / (a[0] + a[1] * z + a[2] * z * z)


def k_weighting(freqs: np.ndarray) -> np.ndarray:
    """|H|^2 of the BS.1770 K filter (shelf then high-pass, the standard's 48 kHz coefficients)."""
    shelf = _biquad_response((1.53512485958697, -2.69169618940638, 1.19839281085285),
                             (1.0, -1.69065929318241, 0.73248077421585), freqs)
    rlb = _biquad_response((1.0, -2.0, 1.0), (1.0, -1.99004745483398, 0.99007225036621), freqs)
    return (np.abs(shelf * rlb) ** 2).astype(np.float32)


def spectrum_power(spec: np.ndarray, weight: np.ndarray, n: int) -> float:
    """Mean square of the signal whose rfft is ``spec``, filtered by power weight (Parseval)."""
    p = np.abs(spec) ** 2 * weight
    return float((2.0 * p.sum() - p[0]) / (n * n))


# --- time-domain stages ------------------------------------------------------------------------
def tape(audio: np.ndarray, depth: float, rng: np.random.Generator) -> np.ndarray:
    """Wow and flutter: the read position drifts by up to ~1.5 ms (wow) and 0.1 ms (flutter).

    Each modulation has a whole number of cycles over the track, so the wobble is the same at
    the end as at the start; the read wraps around the track's end."""
    n = audio.size
    seconds = n / SAMPLE_RATE
    t = np.arange(n, dtype=np.float64) / n
    wow_cycles = max(1, round(seconds * (0.45 + 0.2 * rng.random())))
    flutter_cycles = max(1, round(seconds * (5.5 + 1.5 * rng.random())))
    offset = depth * SAMPLE_RATE * (0.0015 * np.sin(2 * np.pi * wow_cycles * t + rng.uniform(0, 6.28))
                                    + 0.0001 * np.sin(2 * np.pi * flutter_cycles * t))
    pos = np.arange(n, dtype=np.float64) + offset
    wrapped = np.concatenate([audio[-256:], audio, audio[:256]])
    return np.interp(pos + 256, np.arange(wrapped.size, dtype=np.float64), wrapped).astype(np.float32)


def drum_bus(drums: np.ndarray, grit: float) -> np.ndarray:
    """Dusty: driven into soft saturation, then bit-reduced a little (the sampler's 12 bits)."""
    drive = 1.0 + 1.5 * grit
    out = np.tanh(drive * drums) / np.tanh(drive)
    if grit > 0.5:
        steps = np.float32(2 ** 11)
        out = np.round(out * steps) / steps
    return out.astype(np.float32)


def smooth_circular(values: np.ndarray, width: int) -> np.ndarray:
    """Moving average over ``width`` samples, wrapping at the ends (centred)."""
    width = max(1, min(int(width), values.size))
    half = width // 2
    padded = np.concatenate([values[-half - 1:], values, values[:width]]) if half + 1 <= values.size else values
    c = np.cumsum(padded, dtype=np.float64)
    out = (c[width:] - c[:-width]) / width
    return out[:values.size].astype(np.float32)


def compress(stereo: np.ndarray, threshold_db: float, ratio: float) -> np.ndarray:
    """A slow glue compressor: RMS over 300 ms (circular), soft knee, linked channels."""
    power = smooth_circular(np.mean(stereo ** 2, axis=0), int(0.3 * SAMPLE_RATE))
    level_db = 10.0 * np.log10(power + 1e-12)
    over = level_db - threshold_db
    knee = 6.0
    reduction = np.where(over <= -knee / 2, 0.0,
                         np.where(over >= knee / 2, over * (1 - 1 / ratio),
                                  (1 - 1 / ratio) * (over + knee / 2) ** 2 / (2 * knee)))
    gain = smooth_circular((10.0 ** (-reduction / 20.0)).astype(np.float32), int(0.1 * SAMPLE_RATE))
    return (stereo * gain).astype(np.float32)


# --- loudness and true peak --------------------------------------------------------------------
def integrated_loudness(k_weighted: np.ndarray) -> float:
    """BS.1770-4 gated loudness (LUFS) of a K-weighted (channels, n) signal, blocks wrapping."""
    n = k_weighted.shape[-1]
    hop = SAMPLE_RATE // 10
    chunks = n // hop
    if chunks < 4:
        return float(10 * np.log10(np.mean(k_weighted ** 2) * k_weighted.shape[0] + 1e-12) - 0.691)
    power = (k_weighted[:, :chunks * hop].astype(np.float64) ** 2).reshape(k_weighted.shape[0], chunks, hop).mean(axis=2).sum(axis=0)
    blocks = (power + np.roll(power, -1) + np.roll(power, -2) + np.roll(power, -3)) / 4.0  # 400 ms, 75 % overlap
    loud = -0.691 + 10 * np.log10(blocks + 1e-12)
    gated = blocks[loud > -70.0]
    if gated.size == 0:
        return -70.0
    relative = -0.691 + 10 * np.log10(gated.mean()) - 10.0
    gated = blocks[(loud > -70.0) & (loud > relative)]
    return float(-0.691 + 10 * np.log10(gated.mean()))


def _interpolator(phases: int = 4, taps_per_phase: int = 12) -> np.ndarray:
    """Polyphase windowed-sinc taps for ``phases``x oversampling (the BS.1770 way to find true peaks)."""
    length = phases * taps_per_phase
    k = np.arange(length) - (length - 1) / 2.0
    h = np.sinc(k / phases) * np.kaiser(length, 8.0)
    return (h.reshape(taps_per_phase, phases).T * phases / h.sum() * 1.0).astype(np.float32)


INTERPOLATOR = _interpolator()


def sample_peaks(channel: np.ndarray) -> np.ndarray:
    """Per sample, the largest magnitude among it and its 4x oversampled neighbours (circular)."""
    taps = INTERPOLATOR.shape[1]
    padded = np.concatenate([channel[-taps:], channel, channel[:taps]])
    peak = np.abs(channel).astype(np.float32)
    for phase in INTERPOLATOR:
        up = np.convolve(padded, phase, mode="same")[taps:taps + channel.size]
        np.maximum(peak, np.abs(up), out=peak)
    return peak


def _sliding_min_forward(values: np.ndarray, width: int) -> np.ndarray:
    """min(values[i : i + width]) for every i, wrapping (doubling: log2(width) passes)."""
    out = values.copy()
    span = 1
    while span < width:
        step = min(span, width - span)
        np.minimum(out, np.roll(out, -step), out=out)
        span += step
    return out


def limit(stereo: np.ndarray, ceiling_db: float) -> np.ndarray:
    """Look-ahead true-peak limiter: the gain is low enough at every (oversampled) peak, and
    reaches it smoothly over 1.5 ms before and releases over 1.5 ms after."""
    ceiling = np.float32(10.0 ** (ceiling_db / 20.0))
    peak = np.maximum(sample_peaks(stereo[0]), sample_peaks(stereo[1]))
    need = np.minimum(1.0, ceiling / np.maximum(peak, 1e-9)).astype(np.float32)
    if float(need.min()) >= 1.0:
        return stereo
    width = int(0.0015 * SAMPLE_RATE)
    held = _sliding_min_forward(need, width)
    # The mean of the forward minimum over the ``width`` samples before: never above ``need``.
    extended = np.concatenate([held[-(width - 1):], held]).astype(np.float64)
    c = np.concatenate([[0.0], np.cumsum(extended)])
    gain = ((c[width:] - c[:-width]) / width).astype(np.float32)
    return (stereo * gain).astype(np.float32)


@dataclass(frozen=True)
class Stems:
    keys: np.ndarray
    lead: np.ndarray
    bass: np.ndarray
    drums: np.ndarray
    duck: np.ndarray  # the keys' gain under the kick (1 = no dip)
    filter_curve: np.ndarray  # 0 = open, 1 = filtered down, per sample


@dataclass(frozen=True)
class MixSettings:
    keys_band: tuple[float, float]
    lead_band: tuple[float, float]
    bass_upright: bool
    kit: str | None
    cutoff_hz: float
    tape: float
    vinyl: float
    rain: float
    room: float


# Loudness of each stem relative to the keys (dB, K-weighted, while it plays).
BALANCE_DB = {"lead": -2.5, "bass": -0.5, "drums": -1.0}
ACTIVE_FLOOR = 0.05


def master(stems: Stems, active: dict[str, float], settings: MixSettings, rng: np.random.Generator,
           step: Callable[[str], None]) -> tuple[np.ndarray, dict[str, float]]:
    """The finished stereo loop and the measured levels (for the metadata)."""
    n = stems.keys.size
    freqs = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE).astype(np.float32)
    kw = k_weighting(freqs)
    hf_loss = lowpass(freqs, 9000.0 - 4000.0 * settings.tape, 1)
    keys = tape(stems.keys * stems.duck, settings.tape, rng)
    lead = tape(stems.lead * np.sqrt(stems.duck), settings.tape * 0.7, rng)
    drums = drum_bus(stems.drums, 0.8 if settings.kit == "dusty" else 0.3)
    step("tape")
    spectra = {
        "keys": np.fft.rfft(keys) * highpass(freqs, settings.keys_band[0]) * lowpass(freqs, settings.keys_band[1]) * hf_loss,
        "lead": np.fft.rfft(lead) * highpass(freqs, settings.lead_band[0]) * lowpass(freqs, settings.lead_band[1]) * hf_loss,
        "bass": np.fft.rfft(stems.bass) * highpass(freqs, 32.0) * lowpass(freqs, 1400.0 if settings.bass_upright else 900.0),
        "drums": np.fft.rfft(drums) * highpass(freqs, 38.0) * lowpass(freqs, 7500.0 if settings.kit == "dusty" else 11000.0),
    }
    step("spectra")
    # Balance while playing: a stem that plays half the track is judged on that half.
    level = {name: spectrum_power(spec, kw, n) / max(active.get(name, 1.0), ACTIVE_FLOOR)
             for name, spec in spectra.items()}
    keys_level = max(level["keys"], 1e-12)
    gains = {"keys": 1.0}
    for name, rel_db in BALANCE_DB.items():
        gains[name] = 0.0 if level[name] <= 1e-14 else float(np.sqrt(keys_level * 10 ** (rel_db / 10) / level[name]))
    room = [_room_spectrum(n, rng) for _ in range(2)]
    haas = np.exp(-2j * np.pi * freqs * (96 / SAMPLE_RATE)).astype(np.complex64)
    texture = _texture_spectra(freqs, n, settings, keys_level, kw, rng)
    tone = lowpass(freqs, settings.cutoff_hz, 1)
    closed = lowpass(freqs, 450.0, 2)
    step("room")
    channels = []
    for side in (0, 1):
        wet = room[side] * settings.room
        spec = (spectra["keys"] * gains["keys"] * (1.0 + 0.45 * wet) * (haas if side else 1.0)
                + spectra["lead"] * gains["lead"] * (1.0 + 0.35 * wet)
                + spectra["bass"] * gains["bass"]
                + spectra["drums"] * gains["drums"] * (1.0 + 0.12 * wet)) * tone
        dry = np.fft.irfft(spec + texture[side], n)
        shut = np.fft.irfft(spec * closed + texture[side], n)
        f = stems.filter_curve
        channels.append((dry * (1 - f) + shut * f).astype(np.float32))
        step(f"side{side}")
    stereo = np.stack(channels)
    stereo += _vinyl_pops(n, settings.vinyl, keys_level, rng)
    loud_db = 10 * np.log10(np.percentile(smooth_circular(np.mean(stereo ** 2, axis=0), SAMPLE_RATE), 90) + 1e-12)
    stereo = compress(stereo, threshold_db=loud_db - 3.0, ratio=1.8)
    step("glue")
    stereo, lufs = _loudness_and_peak(stereo, kw)
    step("level")
    levels = {f"{name}_db": round(float(10 * np.log10(level[name] * gains[name] ** 2 / keys_level + 1e-12)), 1)
              for name in gains}
    levels["lufs"] = round(lufs, 2)
    return stereo, levels


def _loudness_and_peak(stereo: np.ndarray, kw: np.ndarray) -> tuple[np.ndarray, float]:
    n = stereo.shape[-1]
    weight = np.sqrt(kw).astype(np.float32)
    k_weighted = np.stack([np.fft.irfft(np.fft.rfft(ch) * weight, n) for ch in stereo]).astype(np.float32)
    lufs = integrated_loudness(k_weighted)
    out = stereo
    gain_total = 1.0
    for _ in range(4):  # the limiter takes a little loudness: scale back up and limit again
        gain = 10 ** ((TARGET_LUFS - lufs) / 20.0)
        gain_total *= gain
        scaled = stereo * np.float32(gain_total)
        out = limit(scaled, PEAK_CEILING_DBTP)
        ratio = np.divide(out[0], scaled[0], out=np.ones_like(out[0]), where=np.abs(scaled[0]) > 1e-9)
        lufs = integrated_loudness(k_weighted * np.float32(gain_total) * ratio)
        if abs(lufs - TARGET_LUFS) < 0.2:
            break
    return out, lufs


def _room_spectrum(n: int, rng: np.random.Generator) -> np.ndarray:
    """A small warm room: 1.2 s of decaying, darkening noise (each side its own)."""
    length = min(n, int(1.2 * SAMPLE_RATE))
    t = np.arange(length, dtype=np.float32) / SAMPLE_RATE
    ir = np.zeros(n, dtype=np.float32)
    ir[int(0.012 * SAMPLE_RATE):length] = (rng.standard_normal(length, dtype=np.float32) * np.exp(-t * 4.0) * 0.03)[
        int(0.012 * SAMPLE_RATE):]
    spec = np.fft.rfft(ir)
    return spec * lowpass(np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE).astype(np.float32), 5000.0, 1)


def _noise_spectrum(freqs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """White noise of unit variance drawn directly as an rfft (no FFT needed)."""
    n = 2 * (freqs.size - 1)
    spec = (rng.standard_normal(freqs.size, dtype=np.float32)
            + 1j * rng.standard_normal(freqs.size, dtype=np.float32)) * np.float32(np.sqrt(n / 2))
    spec[0] = 0
    return spec.astype(np.complex64)


def _texture_spectra(freqs: np.ndarray, n: int, settings: MixSettings, keys_level: float, kw: np.ndarray,
                     rng: np.random.Generator) -> list[np.ndarray]:
    """Vinyl hiss and rain, each at its level under the keys (asked for: vinyl -13 dB, rain -11 dB: audible)."""
    out = [np.zeros(freqs.size, dtype=np.complex64) for _ in range(2)]
    layers = []
    if settings.vinyl > 0:
        layers.append((highpass(freqs, 300.0, 1) * lowpass(freqs, 6000.0, 1), -27.0 + 14.0 * settings.vinyl))
    if settings.rain > 0:
        layers.append((highpass(freqs, 500.0, 1) * lowpass(freqs, 9000.0, 1), -21.0 + 10.0 * settings.rain))
    for shape, rel_db in layers:
        for side in (0, 1):
            spec = _noise_spectrum(freqs, rng) * shape
            power = spectrum_power(spec, kw, n)
            out[side] += spec * np.float32(np.sqrt(keys_level * 10 ** (rel_db / 10) / max(power, 1e-20)))
    return out


def _vinyl_pops(n: int, vinyl: float, keys_level: float, rng: np.random.Generator) -> np.ndarray:
    """Clicks and pops of a record surface: sparse, a few per second, each a tiny decaying blip."""
    pops = np.zeros((2, n), dtype=np.float32)
    if vinyl <= 0:
        return pops
    count = max(1, int(n / SAMPLE_RATE * (2 + 10 * vinyl)))
    where = rng.integers(0, n, size=count)
    size = rng.uniform(0.2, 1.0, size=count) ** 3 * np.sqrt(keys_level) * (1.2 + 2.5 * vinyl)
    sign = np.where(rng.random(count) < 0.5, -1.0, 1.0)
    for side in (0, 1):
        np.add.at(pops[side], where, (size * sign * (1.0 if side == 0 else 0.8)).astype(np.float32))
    click = np.exp(-np.arange(40, dtype=np.float32) / 5.0) * np.cos(np.arange(40, dtype=np.float32) * 1.3)
    for side in (0, 1):
        pops[side] = np.convolve(np.concatenate([pops[side][-39:], pops[side]]), click, mode="valid")
    return pops
