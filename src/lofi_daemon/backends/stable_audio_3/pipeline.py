"""One Stable Audio 3 track, in numbered steps: text -> conditioning -> ping-pong -> SAME-S.

Our loop rather than diffusers' ``StableAudio3Pipeline``: it matches the official sampler where
the pipeline differs (``sampler.py``), always feeds the inpaint conditioning (``inpaint.py``),
and reports and checks cancel at every diffusion step and every decode window. The text
encoder is passed in as a function, so the caller can free it after encoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from . import inpaint
from .sampler import latent_length, pingpong, sigma_schedule

if TYPE_CHECKING:
    import torch

    from ...cancel import CancelToken
    from .same_s import SameS

SAMPLE_RATE = 44_100


@dataclass(frozen=True)
class Parts:
    dit: "torch.nn.Module"  # diffusers StableAudio3DiTModel
    duration_embedder: "torch.nn.Module"  # diffusers StableAudio3DurationEmbedder
    same_s: "SameS"
    max_samples: int = 5_292_032  # the config's sample_size (120 s)
    headroom: float = 6.0  # seconds generated past the duration, then cut (the official default)


@dataclass(frozen=True)
class Track:
    audio: "torch.Tensor"  # (2, samples) at 44.1 kHz, clamped to [-1, 1]
    latents: "torch.Tensor"  # (1, 256, n): what was decoded, for continuing later


TextFn = Callable[[], tuple["torch.Tensor", "torch.Tensor"]]  # -> hidden (1, L, d), mask (1, L) bool
StepReport = Callable[[str, int, int], None]  # (phase, done, total)


def generate(parts: Parts, text: TextFn, *, duration: float, seed: int, steps: int,
             cancel: "CancelToken", report: StepReport = lambda phase, done, total: None,
             keep: "torch.Tensor | None" = None, window: int = 58,
             on_window: "Callable[[torch.Tensor], None] | None" = None) -> Track:
    import torch

    same_s = parts.same_s
    # 1. Conditioning: the text tokens plus one duration token; the duration is also the global cond.
    hidden, mask = text()
    with torch.no_grad():
        seconds = parts.duration_embedder(torch.tensor([float(duration)]))
    context = torch.cat([hidden, seconds[:, None].to(hidden.dtype)], dim=1)
    context_mask = torch.cat([mask.bool(), torch.ones(1, 1, dtype=torch.bool)], dim=1)

    # 2. Length and noise: one generator per call, drawn in a fixed order (start, then each step).
    n = latent_length(duration, samples_per_latent=same_s.samples_per_latent,
                      latents_per_block=same_s.config.latents_per_block, max_samples=parts.max_samples,
                      headroom=parts.headroom)
    generator = torch.Generator().manual_seed(int(seed))
    io = same_s.config.latent_dim
    x = torch.randn(1, io, n, generator=generator)
    valid = int(duration * SAMPLE_RATE) // same_s.samples_per_latent
    condition = inpaint.empty(io, n) if keep is None else inpaint.keep_head(keep, n, valid=valid)

    # 3. Ping-pong, one DiT call per step.
    sigmas = sigma_schedule(steps)

    def velocity(latents: "torch.Tensor", t: "torch.Tensor") -> "torch.Tensor":
        with torch.no_grad():
            return parts.dit(latents, t, encoder_hidden_states=context, global_hidden_states=seconds,
                             encoder_attention_mask=context_mask, local_add_cond=condition).sample

    x = pingpong(velocity, x, sigmas,
                 noise=lambda i: torch.randn(x.shape, generator=generator),
                 before_step=lambda i: cancel.check(i, steps),
                 after_step=lambda i: report("diffusion", i + 1, steps))
    if keep is not None:
        x = inpaint.paste_back(x, condition)

    # 4. Decode in windows (58 + 2 x 2 latents = 31 and 32 attention blocks: two full groups of
    #    16, so little padding; 64 would pad 34/35 blocks to 48), bit-equal to one pass, until
    #    the duration is covered; the headroom past it is never decoded.
    wanted = min(int(duration * SAMPLE_RATE), n * same_s.samples_per_latent)
    windows = -(-(-(-wanted // same_s.samples_per_latent)) // window)
    cancel.check(steps, steps)
    pieces, have, length = [], 0, int(duration * SAMPLE_RATE)
    with torch.no_grad():
        for i, (_, audio) in enumerate(same_s.decode_windows(x, core=window, context=2)):
            piece = audio[0, :, : max(0, length - have)].clamp(-1, 1)  # what the file keeps of it
            pieces.append(piece)
            have += audio.shape[-1]
            if on_window is not None and piece.shape[-1]:
                on_window(piece)  # joined, the windows are exactly the track
            report("decode", i + 1, windows)
            if have >= wanted:
                break
            cancel.check(steps, steps)
    audio = torch.cat(pieces, dim=-1)
    return Track(audio=audio, latents=x)
