"""Render an audio file's spectrogram (and level envelope) as a PNG, to look at what we make.

    python bench/spectrogram.py track.wav out.png [--seconds 20]

numpy + zlib only (no matplotlib): log-frequency rows, dB colour map, time left to right.
"""

from __future__ import annotations

import argparse
import struct
import zlib

import numpy as np
import soundfile as sf


def spectrogram(mono: np.ndarray, rate: int, height: int = 256, width: int = 1200) -> np.ndarray:
    n_fft = 4096
    hop = max(1, (mono.size - n_fft) // width)
    frames = np.lib.stride_tricks.sliding_window_view(mono, n_fft)[::hop][:width]
    mag = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1))
    freqs = np.fft.rfftfreq(n_fft, 1 / rate)
    rows = np.geomspace(30, rate / 2, height)  # log frequency, low at the bottom
    idx = np.searchsorted(freqs, rows).clip(0, freqs.size - 1)
    db = 20 * np.log10(mag[:, idx].T + 1e-9)
    db = np.clip((db - (db.max() - 80)) / 80, 0, 1)  # 80 dB range
    return db[::-1]


def colour(v: np.ndarray) -> np.ndarray:
    r = np.clip(3 * v - 1, 0, 1)
    g = np.clip(3 * v - 2, 0, 1) * 0.8 + np.clip(1.5 * v, 0, 1) * 0.2
    b = np.clip(np.sin(np.pi * v) * 1.2, 0, 1)
    return (np.stack([r, g, b], -1) * 255).astype(np.uint8)


def write_png(path: str, rgb: np.ndarray) -> None:
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("audio")
    ap.add_argument("png")
    ap.add_argument("--seconds", type=float, default=None)
    args = ap.parse_args()
    data, rate = sf.read(args.audio, always_2d=True)
    mono = data.mean(axis=1)
    if args.seconds:
        mono = mono[: int(args.seconds * rate)]
    spec = colour(spectrogram(mono, rate))
    # level envelope strip under the spectrogram (shows the beat)
    width = spec.shape[1]
    env = np.array([np.sqrt(np.mean(c ** 2)) for c in np.array_split(mono, width)])
    env = (env / (env.max() or 1) * 63).astype(int)
    strip = np.zeros((64, width, 3), np.uint8)
    for x, v in enumerate(env):
        strip[63 - v:, x] = (90, 200, 120)
    write_png(args.png, np.concatenate([spec, strip], axis=0))


if __name__ == "__main__":
    main()
