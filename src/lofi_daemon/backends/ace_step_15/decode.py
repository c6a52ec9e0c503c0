"""Latents -> 48 kHz stereo: the Oobleck VAE decode, in tiles for long audio, and the loudness.

``AutoencoderOobleck`` can tile its decode (``enable_tiling``) but does it in one call,
with no way to report or stop between tiles, and the pipeline does not turn it on (whatever
its comment says). So we tile ourselves, the same way: each tile decodes its core plus
``overlap`` latents of real context on each side and keeps only the core, so the joined
waveform equals the one-shot decode up to float noise (the decoder is convolutional; its
receptive field is far inside 64 latents = 2.56 s). Between tiles we report progress and
check cancel. Peak memory follows the tile size, not the track length.

Loudness is the pipeline's own post-processing: divide by the peak where it exceeds 1, then
scale the peak to -1 dBFS (plain tracks; a continuation keeps its head's level, ``extend.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import torch

    from ...cancel import CancelToken

TARGET_PEAK = 10.0 ** (-1.0 / 20.0)  # -1 dBFS, as the pipeline normalises


@dataclass(frozen=True)
class TilePlan:
    """Tile sizes in latents (25 per second at 48 kHz)."""

    core: int = 384  # latents each tile contributes (15.4 s)
    overlap: int = 64  # context latents on each side, decoded and dropped (2.56 s)
    untiled_up_to: int = 512  # shorter latents decode in one call (20.5 s)

    def __post_init__(self) -> None:
        if self.core < 1 or self.overlap < 0:
            raise ValueError("TilePlan needs core >= 1 and overlap >= 0")

    def tiles(self, length: int) -> list[tuple[int, int, int, int]]:
        """``(core_start, core_end, window_start, window_end)`` for each tile of ``length`` latents."""
        if length <= self.untiled_up_to:
            return [(0, length, 0, length)]
        out = []
        for start in range(0, length, self.core):
            end = min(start + self.core, length)
            out.append((start, end, max(0, start - self.overlap), min(length, end + self.overlap)))
        return out

    def count(self, length: int) -> int:
        return 1 if length <= self.untiled_up_to else math.ceil(length / self.core)


def decode(vae: "torch.nn.Module", latents: "torch.Tensor", plan: TilePlan = TilePlan(), *,
           on_tile: Callable[[int, int], None] | None = None, cancel: "CancelToken | None" = None,
           on_piece: "Callable[[torch.Tensor], None] | None" = None) -> "torch.Tensor":
    """``latents`` [B, T, C] (the pipeline's layout) -> audio [B, channels, samples] float32.

    ``on_piece`` gets each tile's audio as soon as it is decoded, in time order (joined, the
    pieces are the result)."""
    import torch

    z = latents.transpose(1, 2).to(dtype=vae.dtype)  # the VAE wants [B, C, T]
    tiles = plan.tiles(z.shape[-1])
    pieces: list[torch.Tensor] = []
    with torch.no_grad():
        for i, (start, end, lo, hi) in enumerate(tiles):
            if cancel is not None:
                cancel.check(i, len(tiles))
            audio = vae.decoder(z[:, :, lo:hi])
            per_latent = audio.shape[-1] // (hi - lo)  # the hop: 1920 samples at 48 kHz
            pieces.append(audio[:, :, (start - lo) * per_latent:(end - lo) * per_latent].float())
            if on_piece is not None:
                on_piece(pieces[-1])
            if on_tile is not None:
                on_tile(i + 1, len(tiles))
    return torch.cat(pieces, dim=-1) if len(pieces) > 1 else pieces[0]


def normalize(audio: "torch.Tensor") -> "torch.Tensor":
    """The pipeline's loudness: no clipping, peak at -1 dBFS."""
    peak = audio.abs().amax(dim=[1, 2], keepdim=True)
    audio = audio / peak.clamp(min=1.0)
    peak = audio.abs().amax(dim=[1, 2], keepdim=True).clamp(min=1e-6)
    return audio * (TARGET_PEAK / peak)
