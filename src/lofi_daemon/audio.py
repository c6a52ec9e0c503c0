"""Audio finishing and files: resample to 48 kHz (soxr), short fades, stereo, write.

Only this module imports soundfile and soxr.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

OUTPUT_SAMPLE_RATE = 48_000
FADE_SEC = 0.005  # a few ms: removes the click of a non-zero first/last sample, inaudible otherwise
FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "ogg": ("OGG", "VORBIS")}


def finish(samples: np.ndarray, sample_rate: int, *, loopable: bool = False) -> np.ndarray:
    """Return ``samples`` (channels, frames) as float32 stereo at 48 kHz with faded edges;
    a ``loopable`` track keeps its edges (its end already flows into its start)."""
    audio = np.asarray(samples, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None, :]
    if audio.shape[0] == 1:
        audio = np.repeat(audio, 2, axis=0)  # mono models are written as centred stereo
    if sample_rate != OUTPUT_SAMPLE_RATE:
        audio = resample(audio, sample_rate, OUTPUT_SAMPLE_RATE)
    return audio if loopable else apply_fades(audio, OUTPUT_SAMPLE_RATE)


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """High-quality resampling of (channels, frames) float audio with soxr (VHQ)."""
    import soxr

    out = soxr.resample(np.ascontiguousarray(audio.T), rate_in, rate_out, quality="VHQ")
    return np.ascontiguousarray(out.T, dtype=np.float32)


def stream_resampler(rate_in: int, rate_out: int, channels: int) -> "object":
    """soxr for audio that arrives in pieces (playback of a track as it decodes): feed
    (frames, channels) pieces to ``resample_chunk(x, last=...)``; the pieces join seamlessly."""
    import soxr

    return soxr.ResampleStream(rate_in, rate_out, channels, dtype="float32", quality="VHQ")


def apply_fades(audio: np.ndarray, sample_rate: int, fade_sec: float = FADE_SEC) -> np.ndarray:
    n = min(int(round(fade_sec * sample_rate)), audio.shape[-1] // 2)
    if n <= 0:
        return audio
    out = audio.copy()
    ramp = np.sin(np.linspace(0.0, np.pi / 2, n, dtype=np.float64)) ** 2  # smooth (raised-cosine) ramp
    out[..., :n] *= ramp.astype(np.float32)
    out[..., -n:] *= ramp[::-1].astype(np.float32)
    return out


ENCODE_BLOCK_FRAMES = OUTPUT_SAMPLE_RATE  # one second per call: libsndfile's Vorbis writer
# overflows the thread stack when a long track (>= ~44 s) is handed over in one write.


def encode(audio: np.ndarray, sample_rate: int, fmt: str) -> bytes:
    """Encode (channels, frames) float audio into the bytes of a ``fmt`` file, block by block.

    This runs in the encoder child process (encoder.py); call ``encoder.encode_isolated``
    from the daemon so a crash in libsndfile cannot take the daemon with it.
    """
    import soundfile as sf

    container, subtype = FORMATS[fmt]
    buf = io.BytesIO()
    frames = np.clip(audio, -1.0, 1.0).T
    with sf.SoundFile(buf, "w", samplerate=sample_rate, channels=frames.shape[1], format=container,
                      subtype=subtype) as out:
        for start in range(0, frames.shape[0], ENCODE_BLOCK_FRAMES):
            out.write(np.ascontiguousarray(frames[start:start + ENCODE_BLOCK_FRAMES]))
    return buf.getvalue()


def read(path: Path) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 (channels, frames) and its sample rate."""
    import soundfile as sf

    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T), rate


def probe(path: Path) -> tuple[int, int, int]:
    """(frames, sample rate, channels) of an audio file, without decoding it."""
    import soundfile as sf

    info = sf.info(str(path))
    return int(info.frames), int(info.samplerate), int(info.channels)
