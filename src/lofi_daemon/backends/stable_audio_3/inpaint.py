"""The inpaint conditioning the DiT always gets: ``cat([mask, latents * mask])``, 257 channels.

1 in the mask = keep that latent, 0 = generate it. Plain text-to-music feeds all zeros (the
official code does; diffusers' text-to-music pipeline leaves the input out, which is a
different model: every block adds a learned constant for the zero input). Continuing a track
keeps its tail as the new track's head: the tail's latents go in the first frames with the
mask set there, and the model writes the rest. As in the official code the mask is zeroed past
``seconds_total``. The official PyTorch sampler does not blend after sampling (what is kept
comes out of the model); for continuation we paste the kept latents back (``paste_back``), as
the official MLX port can, so the seam with the previous track is exact.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def empty(latent_dim: int, length: int, *, dtype=None) -> "torch.Tensor":
    """Nothing kept: text-to-music."""
    import torch

    return torch.zeros(1, latent_dim + 1, length, dtype=dtype)


def keep_head(kept: "torch.Tensor", length: int, *, valid: int | None = None) -> "torch.Tensor":
    """Keep ``kept`` (``(1, latent_dim, k)`` latents) as the first ``k`` of ``length`` latents;
    ``valid`` (latents of ``seconds_total``) bounds the mask as the official code does."""
    import torch

    latent_dim, k = kept.shape[1], min(kept.shape[-1], length)
    if valid is not None:
        k = min(k, valid)
    mask = torch.zeros(1, 1, length, dtype=kept.dtype)
    mask[..., :k] = 1
    latents = torch.zeros(1, latent_dim, length, dtype=kept.dtype)
    latents[..., :k] = kept[..., :k]
    return torch.cat([mask, latents * mask], dim=1)


def paste_back(latents: "torch.Tensor", condition: "torch.Tensor") -> "torch.Tensor":
    """Put the kept latents back after sampling (what the official MLX port offers as
    ``paste_back``): the kept head is then the source's own latents, bit for bit, and only the
    two latents before the seam decode differently (SAME-S reaches two latents)."""
    mask, kept = condition[:, :1], condition[:, 1:]
    return latents * (1 - mask) + kept
