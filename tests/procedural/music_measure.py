"""Measuring a render the way a listener's tools would, in plain numpy, independent of the
generator's own code paths:

- loudness: BS.1770-4 K-weighting run as the standard's causal biquads (their impulse
  response from the recurrence, then a linear convolution), gated integrated loudness;
  loudness range as EBU Tech 3342 (3 s short-term windows);
- true peak: 4x oversampling by zero-padding the spectrum (not the generator's polyphase FIR);
- chroma per bar from an FFT; a timbre fingerprint as the mean log spectrum in 1/3 octaves.
"""

from __future__ import annotations

import functools

import numpy as np

RATE = 48_000
SHELF = ((1.53512485958697, -2.69169618940638, 1.19839281085285), (1.0, -1.69065929318241, 0.73248077421585))
HIGHPASS = ((1.0, -2.0, 1.0), (1.0, -1.99004745483398, 0.99007225036621))


def _biquad(b, a, x):
    y = np.zeros_like(x)
    x1 = x2 = y1 = y2 = 0.0
    for i, v in enumerate(x):
        out = b[0] * v + b[1] * x1 + b[2] * x2 - a[1] * y1 - a[2] * y2
        x2, x1, y2, y1 = x1, v, y1, out
        y[i] = out
    return y


@functools.lru_cache(maxsize=1)
def k_impulse_response(length: int = 24_000) -> np.ndarray:
    """The K filter's first 0.5 s of impulse response (it has decayed below -120 dB by then)."""
    impulse = np.zeros(length)
    impulse[0] = 1.0
    return _biquad(*HIGHPASS, _biquad(*SHELF, impulse))


def k_weight(stereo: np.ndarray) -> np.ndarray:
    h = k_impulse_response()
    n = stereo.shape[-1]
    size = 1 << int(np.ceil(np.log2(n + h.size)))
    spec = np.fft.rfft(h, size)
    return np.stack([np.fft.irfft(np.fft.rfft(ch.astype(np.float64), size) * spec, size)[:n] for ch in stereo])


def _block_loudness(k: np.ndarray, block_sec: float, hop_sec: float) -> np.ndarray:
    block, hop = int(block_sec * RATE), int(hop_sec * RATE)
    sq = np.concatenate([[0.0], np.cumsum((k ** 2).sum(axis=0))])
    starts = np.arange(0, k.shape[-1] - block + 1, hop)
    power = (sq[starts + block] - sq[starts]) / block
    return -0.691 + 10 * np.log10(power + 1e-20)


def integrated_lufs(stereo: np.ndarray) -> float:
    loud = _block_loudness(k_weight(stereo), 0.4, 0.1)
    loud = loud[loud > -70]
    rel = 10 * np.log10(np.mean(10 ** (loud / 10))) - 10
    loud = loud[loud > rel]
    return float(10 * np.log10(np.mean(10 ** (loud / 10))))


def loudness_range_lu(stereo: np.ndarray) -> float:
    short = _block_loudness(k_weight(stereo), 3.0, 0.1)
    short = short[short > -70]
    rel = 10 * np.log10(np.mean(10 ** (short / 10))) - 20
    short = short[short > rel]
    return float(np.percentile(short, 95) - np.percentile(short, 10))


def true_peak_dbtp(stereo: np.ndarray) -> float:
    peak = 0.0
    for ch in stereo.astype(np.float64):
        up = np.fft.irfft(np.fft.rfft(ch), 4 * ch.size) * 4
        peak = max(peak, float(np.max(np.abs(up))))
    return 20 * np.log10(peak)


def bar_slices(n: int, bpm: float) -> list[slice]:
    bar = 4 * 60.0 / bpm * RATE
    return [slice(int(k * bar), int((k + 1) * bar)) for k in range(int(n // bar))]


def chroma(segment: np.ndarray) -> np.ndarray:
    """12 pitch-class energies of a mono segment, 55 Hz-2 kHz, unit length."""
    spec = np.abs(np.fft.rfft(segment * np.hanning(segment.size))) ** 2
    freqs = np.fft.rfftfreq(segment.size, 1.0 / RATE)
    keep = (freqs >= 55) & (freqs <= 2000)
    pitch = np.round(12 * np.log2(freqs[keep] / 440.0) + 69).astype(int) % 12
    out = np.bincount(pitch, weights=spec[keep], minlength=12)
    return out / (np.linalg.norm(out) + 1e-12)


def band_db(segment: np.ndarray, low: float, high: float) -> float:
    spec = np.abs(np.fft.rfft(segment)) ** 2
    freqs = np.fft.rfftfreq(segment.size, 1.0 / RATE)
    return float(10 * np.log10(spec[(freqs >= low) & (freqs < high)].sum() / segment.size ** 2 + 1e-20))


def timbre(stereo: np.ndarray) -> np.ndarray:
    """What the instruments and the mix sound like, not how loud or in which key: per 50 ms
    frame, the share of power in five wide bands, the spectral centroid and flatness, and how
    much each band moves from frame to frame (plucks and hits vs pads), averaged over the track."""
    mono = stereo.mean(axis=0).astype(np.float64)
    frame = 2400
    frames = mono[: mono.size // frame * frame].reshape(-1, frame) * np.hanning(frame)
    spec = np.abs(np.fft.rfft(frames, axis=1)) ** 2 + 1e-12
    freqs = np.fft.rfftfreq(frame, 1.0 / RATE)
    edges = (30, 150, 500, 2000, 6000, 16000)
    bands = np.stack([spec[:, (freqs >= lo) & (freqs < hi)].sum(axis=1) for lo, hi in zip(edges[:-1], edges[1:])], axis=1)
    share = 10 * np.log10(bands / bands.sum(axis=1, keepdims=True))
    centroid = np.log2((spec * freqs).sum(axis=1) / spec.sum(axis=1))
    audible = spec[:, (freqs > 100) & (freqs < 8000)]
    flatness = np.log(audible).mean(axis=1) - np.log(audible.mean(axis=1))
    flux = np.abs(np.diff(10 * np.log10(bands), axis=0)).mean(axis=0) / 3.0
    return np.concatenate([share.mean(axis=0) / 3.0, [2 * centroid.mean(), flatness.mean()], flux])


def noise_floor_db(stereo: np.ndarray, low: float = 3000, high: float = 10000) -> float:
    """The quietest tenth of 20 ms frames in ``low``-``high``, relative to the whole track's level."""
    mono = stereo.mean(axis=0).astype(np.float64)
    frame = 960
    frames = mono[: mono.size // frame * frame].reshape(-1, frame) * np.hanning(frame)
    spec = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    freqs = np.fft.rfftfreq(frame, 1.0 / RATE)
    band = spec[:, (freqs >= low) & (freqs < high)].sum(axis=1)
    return float(10 * np.log10(np.percentile(band, 10) / spec.sum(axis=1).mean() + 1e-20))


def seam_jump_ratio(stereo: np.ndarray) -> float:
    """The step from the last sample to the first, over the track's 99.9th percentile step."""
    s = stereo.astype(np.float64)
    steps = np.abs(np.diff(s, axis=1))
    seam = np.abs(s[:, 0] - s[:, -1])
    return float(np.max(seam / np.percentile(steps, 99.9, axis=1)))
