"""The two attentions of a transformer block.

* ``LinearSelfAttention``: ReLU linear attention (Sana's "LiteLA"), no softmax and no
  1/sqrt(d) scale, computed in float32 with a ones-row normaliser and eps 1e-15.
* ``CrossAttention``: softmax attention from latent tokens to the encoder states via
  SDPA, with an additive 0/-inf mask built from both masks.

Both rotate q and k with the RoPE quirk (``rope.py``). Parameter names mirror the
official ``Attention`` modules (``to_q``, ``to_k``, ``to_v``, ``to_out.0``), so the real
checkpoint loads unchanged; the cross-attention's ``add_*_proj`` / ``to_add_out`` weights
are never used by the official forward, so they are not created here.

``q_scale`` (per batch item, ``[B, 1, 1]`` float32) multiplies the query projection: it is how
the ERG-diffusion trick (query x 0.01 in blocks 15-19 for the unconditional pass) is
applied to only the unconditional half of a batched cond+uncond forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .rope import apply_rope

_LINEAR_ATTENTION_EPS = 1e-15


def _projections(dim: int) -> tuple[nn.Linear, nn.Linear, nn.Linear, nn.ModuleList]:
    return (
        nn.Linear(dim, dim, bias=True),
        nn.Linear(dim, dim, bias=True),
        nn.Linear(dim, dim, bias=True),
        nn.ModuleList([nn.Linear(dim, dim, bias=True)]),
    )


class LinearSelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.to_q, self.to_k, self.to_v, self.to_out = _projections(dim)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor | None = None,
        q_scale: torch.Tensor | None = None,
    ) -> torch.Tensor:
        batch, seq, dim = x.shape
        head_dim = dim // self.heads
        q = self.to_q(x)
        if q_scale is not None:
            q = (q * q_scale).to(x.dtype)
        k = self.to_k(x)
        v = self.to_v(x)
        # [B, S, C] -> [B, H, S, D]: channels are head-major, as in the official reshape.
        q, k, v = (t.view(batch, seq, self.heads, head_dim).transpose(1, 2) for t in (q, k, v))
        q = apply_rope(q, *rope)
        k = apply_rope(k, *rope)
        if mask is not None:
            m = mask[:, None, :, None].to(k.dtype)
            q, k, v = q * m, k * m, v * m
        q, k = F.relu(q).float(), F.relu(k).float()
        # Official order of operations: pad v^T with a row of ones, (v^T k) q^T; the last
        # row is the normaliser sum_j k_j . q_i.
        v_t = F.pad(v.float().transpose(-1, -2), (0, 0, 0, 1), value=1.0)  # [B, H, D+1, S]
        out = torch.matmul(torch.matmul(v_t, k), q.transpose(-1, -2))  # [B, H, D+1, S]
        out = out[:, :, :-1] / (out[:, :, -1:] + _LINEAR_ATTENTION_EPS)
        out = out.reshape(batch, dim, seq).transpose(1, 2).to(x.dtype)
        return self.to_out[0](out)


class CrossAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.to_q, self.to_k, self.to_v, self.to_out = _projections(dim)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        context_rope: tuple[torch.Tensor, torch.Tensor],
        additive_mask: torch.Tensor,
        q_scale: torch.Tensor | None = None,
    ) -> torch.Tensor:
        batch, seq, dim = x.shape
        head_dim = dim // self.heads
        q = self.to_q(x)
        if q_scale is not None:
            q = (q * q_scale).to(x.dtype)
        k = self.to_k(context)
        v = self.to_v(context)
        q = q.view(batch, seq, self.heads, head_dim).transpose(1, 2)
        k = k.view(batch, -1, self.heads, head_dim).transpose(1, 2)
        v = v.view(batch, -1, self.heads, head_dim).transpose(1, 2)
        q = apply_rope(q, *rope)
        k = apply_rope(k, *context_rope)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=additive_mask.to(q.dtype))
        out = out.transpose(1, 2).reshape(batch, seq, dim).to(q.dtype)
        return self.to_out[0](out)


def cross_attention_mask(latent_mask: torch.Tensor, context_mask: torch.Tensor, heads: int) -> torch.Tensor:
    """``[B, H, S, L]`` additive mask: 0 where both tokens are valid, -inf elsewhere.

    Built once per forward and shared by every block (the official code rebuilds it
    in each block with the same result).
    """
    both = latent_mask[:, :, None] * context_mask[:, None, :]
    additive = torch.where(both == 1, 0.0, -torch.inf).to(torch.float32)
    return additive[:, None].expand(-1, heads, -1, -1)
