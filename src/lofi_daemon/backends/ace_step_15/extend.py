"""Continuing a track: its last seconds become the head of the new one (the pipeline's repaint task).

diffusers' ``AceStepPipeline`` repaints a span of ``src_audio``: the source's VAE latents and a
chunk mask (0 = keep, 1 = generate) go into the DiT's context, and the span is filled with the
silence latent. Extending is the same task with the span running from the end of the source to
the end of the track, but the pipeline makes the track exactly as long as ``src_audio``. So
``extending_pipeline_class`` overrides one method, ``prepare_src_latents``: a source shorter
than the track is the head, padded with the silence latent to the requested length (the
repaint step then puts silence over the span anyway).

Differences from the pipeline's own repaint, each on purpose:

- the head is encoded before the pipeline call, with the VAE's mean instead of a draw from the
  global RNG (``latent_dist.sample()`` without a generator): same source, same latents, and
  low-VRAM mode can place the VAE first;
- the kept latents are put back at every step (``keep_head``), noised to the step's sigma with
  the track's own initial noise, and exactly at the end (sigma 0): the model only writes the
  span, and the head decodes to the source as well as the VAE reconstructs it.

The file then starts with the source's own samples (``Splicer``), crossfades into the decode
shortly before ``join_frame`` and is the decode from there; that is where the radio's flow
joins the two tracks (old track to its last sample, new track from ``join_frame``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import InvalidParams

if TYPE_CHECKING:
    import numpy as np
    import torch

SAMPLE_RATE = 48_000
HOP = 1920  # samples per latent at 48 kHz
LATENTS_PER_SEC = 25
MAX_KEPT_SECONDS = 10.0  # the head: half the new track, at most this (encode memory and time)
MIN_KEPT_SECONDS = 2.0  # less gives the model too little to continue from
MAX_SOURCE_SECONDS = 900.0  # a library file is read whole: refuse what no backend here writes
CEILING = 0.99  # what the limiter approaches above -1 dBFS: -0.09 dBFS, never full scale
CROSSFADE_SECONDS = 0.25  # source -> decode, ending at join_frame
FIELD = "continue_from"
HINT = "Continue another track (at least 2 s long), or leave continue_from out."


@dataclass(frozen=True)
class Head:
    """The source's last seconds: the samples the file starts with and their latents."""

    samples: "np.ndarray"  # float32 (2, kept * HOP) at 48 kHz
    latents: "torch.Tensor | None" = None  # (1, kept, C) in the pipeline's layout, once encoded

    @property
    def kept(self) -> int:
        return self.samples.shape[-1] // HOP

    @property
    def join_frame(self) -> int:
        return self.samples.shape[-1]


def read_head(path: str, duration_sec: float) -> Head:
    """The last ``min(duration / 2, 10 s)`` of the file at ``path``, in whole latents (untrusted file)."""
    import numpy as np

    from ...audio import probe, read, resample

    try:
        frames, rate, channels = probe(Path(path))
        if rate <= 0 or channels <= 0:
            raise ValueError(f"{rate} Hz, {channels} channels")
        if frames > MAX_SOURCE_SECONDS * rate:
            raise ValueError(f"{frames / rate:.0f} s long; at most {MAX_SOURCE_SECONDS:.0f} s is read")
        audio, rate = read(Path(path))
    except Exception as exc:  # noqa: BLE001 - whatever a damaged or foreign file raises
        raise InvalidParams(f"cannot read the track to continue ({path}): {exc}", field=FIELD, hint=HINT) from None
    if not np.all(np.isfinite(audio)):
        raise InvalidParams(f"the track to continue ({path}) holds NaN/inf samples", field=FIELD, hint=HINT)
    if rate != SAMPLE_RATE:
        audio = resample(audio, rate, SAMPLE_RATE)
    if audio.shape[0] == 1:
        audio = np.repeat(audio, 2, axis=0)
    wanted = int(min(duration_sec / 2, MAX_KEPT_SECONDS) * SAMPLE_RATE)
    kept = min(wanted, audio.shape[-1]) // HOP * HOP
    if kept < MIN_KEPT_SECONDS * SAMPLE_RATE:
        raise InvalidParams(f"the track to continue is too short: {audio.shape[-1] / SAMPLE_RATE:.2f} s, "
                            f"at least {MIN_KEPT_SECONDS:g} s are needed", field=FIELD, hint=HINT)
    return Head(samples=np.ascontiguousarray(audio[:2, -kept:], dtype=np.float32))


def encode_head(vae: Any, head: Head, device: str, dtype: "torch.dtype") -> Head:
    """``head`` with its latents: the VAE encoder's mean (deterministic), in [1, T, C]."""
    import torch

    audio = torch.from_numpy(head.samples).unsqueeze(0).to(device=device, dtype=vae.dtype)
    with torch.no_grad():
        mean = vae.encode(audio).latent_dist.mode()
    latents = mean.transpose(1, 2).to(dtype=dtype)[:, :head.kept]
    return Head(samples=head.samples, latents=latents)


def keep_head(latents: "torch.Tensor", head: "torch.Tensor", noise: "torch.Tensor", sigma: float) -> "torch.Tensor":
    """``latents`` with the kept head where flow matching has it at ``sigma``:
    ``sigma * noise + (1 - sigma) * head`` (the head itself at sigma 0)."""
    k = head.shape[1]
    out = latents.clone()
    out[:, :k] = head if sigma == 0 else sigma * noise[:, :k] + (1.0 - sigma) * head
    return out


def soft_limit(audio: "np.ndarray") -> "np.ndarray":
    """Identity up to -1 dBFS; above it a tanh knee towards ``CEILING``, which it never passes
    (tanh saturates to exactly 1 in floats, so the ceiling sits below full scale). Sample by
    sample, so a window's samples never wait for the rest of the track."""
    import numpy as np

    from .decode import TARGET_PEAK

    x = np.asarray(audio, dtype=np.float64)
    over = np.abs(x) > TARGET_PEAK
    if not over.any():
        return np.array(audio, dtype=np.float32)  # a copy: the caller writes into it
    room = CEILING - TARGET_PEAK
    bent = np.sign(x) * (TARGET_PEAK + room * np.tanh((np.abs(x) - TARGET_PEAK) / room))
    return np.where(over, bent, x).astype(np.float32)


class Splicer:
    """Turns the decode, window by window in time order, into the continuation's final samples.

    Not the pipeline's peak normalisation: its one gain is known only once the whole track is
    decoded, and it would scale the head, which must stay the source's own samples. The decode
    keeps its level (it reconstructs the head at the source's level and continues it) and
    passes ``soft_limit``, so nothing clips; every window is final as soon as it is decoded."""

    def __init__(self, head: Head, crossfade_sec: float = CROSSFADE_SECONDS) -> None:
        self.head = head
        self.crossfade = max(1, min(int(crossfade_sec * SAMPLE_RATE), head.join_frame // 2))
        self.offset = 0  # frames handed out so far

    def window(self, decoded: "np.ndarray") -> "np.ndarray":
        import numpy as np

        out = soft_limit(decoded)
        start, n = self.offset, out.shape[-1]
        self.offset += n
        join, fade = self.head.join_frame, self.crossfade
        if start >= join:
            return out
        # The part of this window before join_frame: the head, then a linear crossfade into the
        # decode (not equal-power: there the decode reconstructs the same audio, and correlated
        # signals add in amplitude).
        frames = np.arange(start, min(start + n, join))
        ramp = np.clip((frames - (join - fade) + 0.5) / fade, 0.0, 1.0).astype(np.float32)
        span = slice(0, frames.size)
        out[:, span] = self.head.samples[:, frames] * (1 - ramp) + out[:, span] * ramp
        return out


def extending_pipeline_class(base: type | None = None) -> type:
    """``base`` (``AceStepPipeline``) whose source audio may be shorter than the track: its
    latents (``head_latents``, set for one call) become the head and the rest is silence latent."""
    if base is None:
        from diffusers import AceStepPipeline

        base = AceStepPipeline

    class ExtendingAceStepPipeline(base):  # type: ignore[misc, valid-type]
        #: The kept head's latents [1, k, C] for the call under way, set by ``sampling.sample_latents``.
        head_latents = None

        def prepare_src_latents(self, device, dtype, batch_size=1, src_audio=None, audio_codes=None,
                                latent_length=None, task_type="text2music"):
            head = self.head_latents
            if head is None or src_audio is None or audio_codes is not None:
                return super().prepare_src_latents(device=device, dtype=dtype, batch_size=batch_size,
                                                   src_audio=src_audio, audio_codes=audio_codes,
                                                   latent_length=latent_length, task_type=task_type)
            silence, length = super().prepare_src_latents(device=device, dtype=dtype, batch_size=batch_size,
                                                          latent_length=latent_length)
            src = silence.clone()
            src[:, :head.shape[1]] = head.to(device=device, dtype=dtype)
            return src, length

    return ExtendingAceStepPipeline
