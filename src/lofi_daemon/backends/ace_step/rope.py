"""Rotary position embedding exactly as the official ACE-Step transformer applies it.

The official code builds its cos/sin tables in the *half-split* layout
(``cat(freqs, freqs)``, as in Qwen2/Llama) but rotates *interleaved* pairs
(``(x0, x1) -> (-x1, x0)``). So element ``j`` of a head uses frequency ``j mod D/2``,
and the two members of a pair use different frequencies. Neither a standard
interleaved nor a standard half-split RoPE reproduces that, hence this module.
"""

from __future__ import annotations

import torch


def rope_tables(
    seq_len: int, head_dim: int, theta: float, *, device: torch.device | str, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cos, sin)``, each ``[seq_len, head_dim]``, for positions ``0..seq_len-1``.

    Computed in float32 like the official cache, then cast to ``dtype`` (the official
    code casts the tables to the hidden-state dtype before using them).
    """
    exponent = torch.arange(0, head_dim, 2, dtype=torch.int64, device=device).float() / head_dim
    inv_freq = 1.0 / (theta**exponent)
    positions = torch.arange(seq_len, dtype=torch.int64, device=device).float()
    freqs = torch.outer(positions, inv_freq)
    table = torch.cat((freqs, freqs), dim=-1)
    return table.cos().to(dtype), table.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` (``[..., seq, head_dim]``) in float32 and return it in ``x``'s dtype."""
    pairs = x.reshape(*x.shape[:-1], -1, 2)
    even, odd = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack((-odd, even), dim=-1).flatten(-2)
    return (x.float() * cos + rotated.float() * sin).to(x.dtype)
