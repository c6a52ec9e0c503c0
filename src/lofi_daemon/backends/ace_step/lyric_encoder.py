"""The lyric Conformer (ESPnet/CosyVoice style) that turns lyric tokens into encoder rows.

Linear embed -> LayerNorm -> x * sqrt(d) with ESPnet relative positions -> pre-LN blocks
(relative-position multi-head attention with ``pos_bias_u``/``pos_bias_v`` and a
bias-free ``linear_pos``; feed-forward Linear-SiLU-Linear) -> LayerNorm. No macaron, no
convolution module, full (non-causal) attention. Parameter names mirror the official
``ConformerEncoder`` so the checkpoint loads unchanged.

Padded keys are masked with -inf before the softmax and the probabilities are zeroed
after it, like the official code: a row whose keys are *all* masked (the single padding
token of the empty-lyrics path) then gives exactly 0 instead of NaN.

ERG-lyric: ``erg_layers`` lists the blocks whose query projection is multiplied by
``erg_scale`` (the official pipeline does that with forward hooks on blocks 4 and 5 for
the unconditional branch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class LyricEncoderConfig:
    """Sizes of the Conformer. The official code hard-codes 1024/16/4096/6 (not in
    config.json); the tiny fixtures record theirs under ``lyric_encoder_config``."""

    output_size: int = 1024
    attention_heads: int = 16
    linear_units: int = 4096
    num_blocks: int = 6


def relative_positions(length: int, dim: int, *, device: torch.device | str, dtype: torch.dtype) -> torch.Tensor:
    """``[1, 2*length-1, dim]`` sinusoids for relative positions ``length-1 .. -(length-1)``.

    Same values as the official table (built for 5000 positions, then sliced): each
    entry depends only on its own position, so building just the needed rows is equal.
    """
    position = torch.arange(0, length, dtype=torch.float32, device=device).unsqueeze(1)
    div_term = torch.exp(
        torch.arange(0, dim, 2, dtype=torch.float32, device=device) * -(math.log(10000.0) / dim)
    )
    positive = torch.zeros(length, dim, device=device)
    negative = torch.zeros(length, dim, device=device)
    positive[:, 0::2] = torch.sin(position * div_term)
    positive[:, 1::2] = torch.cos(position * div_term)
    negative[:, 0::2] = torch.sin(-1 * position * div_term)
    negative[:, 1::2] = torch.cos(-1 * position * div_term)
    table = torch.cat([torch.flip(positive, [0]), negative[1:]], dim=0)
    return table.unsqueeze(0).to(dtype)


class RelPositionAttention(nn.Module):
    def __init__(self, heads: int, dim: int) -> None:
        super().__init__()
        self.heads = heads
        self.d_k = dim // heads
        self.linear_q = nn.Linear(dim, dim)
        self.linear_k = nn.Linear(dim, dim)
        self.linear_v = nn.Linear(dim, dim)
        self.linear_out = nn.Linear(dim, dim)
        self.linear_pos = nn.Linear(dim, dim, bias=False)
        self.pos_bias_u = nn.Parameter(torch.empty(heads, self.d_k))
        self.pos_bias_v = nn.Parameter(torch.empty(heads, self.d_k))

    def forward(
        self, x: torch.Tensor, key_padding: torch.Tensor, pos_emb: torch.Tensor, q_scale: float = 1.0
    ) -> torch.Tensor:
        """``key_padding``: ``[B, 1, 1, T]`` bool, True where the key is padding."""
        batch, length, _ = x.shape
        q = self.linear_q(x)
        if q_scale != 1.0:
            q = q * q_scale
        q = q.view(batch, length, self.heads, self.d_k)  # [B, T, H, d]
        k = self.linear_k(x).view(batch, length, self.heads, self.d_k).transpose(1, 2)
        v = self.linear_v(x).view(batch, length, self.heads, self.d_k).transpose(1, 2)
        p = self.linear_pos(pos_emb).view(pos_emb.shape[0], -1, self.heads, self.d_k).transpose(1, 2)

        content = torch.matmul((q + self.pos_bias_u).transpose(1, 2), k.transpose(-2, -1))
        position = torch.matmul((q + self.pos_bias_v).transpose(1, 2), p.transpose(-2, -1))
        position = _relative_shift(position)
        scores = (content + position) / math.sqrt(self.d_k)

        scores = scores.masked_fill(key_padding, -float("inf"))
        probs = torch.softmax(scores, dim=-1).masked_fill(key_padding, 0.0)
        out = torch.matmul(probs, v).transpose(1, 2).reshape(batch, length, self.heads * self.d_k)
        return self.linear_out(out)


def _relative_shift(scores: torch.Tensor) -> torch.Tensor:
    """``[B, H, T, 2T-1]`` scores against relative positions -> ``[B, H, T, T]``.

    Column ``k`` of the input is relative position ``T-1-k``; output ``[i, j]`` takes
    relative position ``i - j``, i.e. input column ``T-1-i+j`` (the Transformer-XL shift).
    """
    length = scores.shape[-2]
    rows = torch.arange(length, device=scores.device)
    columns = (length - 1) - rows[:, None] + rows[None, :]
    index = columns.expand(*scores.shape[:2], length, length)
    return torch.gather(scores, -1, index)


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w_1 = nn.Linear(dim, hidden)
        self.w_2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(torch.nn.functional.silu(self.w_1(x)))


class ConformerLayer(nn.Module):
    def __init__(self, cfg: LyricEncoderConfig) -> None:
        super().__init__()
        self.self_attn = RelPositionAttention(cfg.attention_heads, cfg.output_size)
        self.feed_forward = FeedForward(cfg.output_size, cfg.linear_units)
        self.norm_ff = nn.LayerNorm(cfg.output_size, eps=1e-5)
        self.norm_mha = nn.LayerNorm(cfg.output_size, eps=1e-5)

    def forward(
        self, x: torch.Tensor, key_padding: torch.Tensor, pos_emb: torch.Tensor, q_scale: float = 1.0
    ) -> torch.Tensor:
        x = x + self.self_attn(self.norm_mha(x), key_padding, pos_emb, q_scale)
        return x + self.feed_forward(self.norm_ff(x))


class LinearEmbed(nn.Module):
    """Holds ``out`` = Linear, LayerNorm (dropout at index 2 has no weights)."""

    def __init__(self, input_size: int, output_size: int) -> None:
        super().__init__()
        self.out = nn.ModuleDict({"0": nn.Linear(input_size, output_size), "1": nn.LayerNorm(output_size, eps=1e-5)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out["1"](self.out["0"](x))


class ConformerEncoder(nn.Module):
    def __init__(self, input_size: int, cfg: LyricEncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = LinearEmbed(input_size, cfg.output_size)
        self.encoders = nn.ModuleList([ConformerLayer(cfg) for _ in range(cfg.num_blocks)])
        self.after_norm = nn.LayerNorm(cfg.output_size, eps=1e-5)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        erg_layers: tuple[int, ...] = (),
        erg_scale: float = 0.01,
    ) -> torch.Tensor:
        """``x``: ``[B, T, input_size]``; ``mask``: ``[B, T]`` (1 = token, 0 = padding)."""
        for index in erg_layers:
            if not 0 <= index < len(self.encoders):
                raise IndexError(f"ERG-lyric needs lyric-encoder block {index}; this model has {len(self.encoders)}")
        key_padding = mask.to(torch.bool).eq(False)[:, None, None, :]
        x = self.embed(x) * math.sqrt(self.cfg.output_size)
        pos_emb = relative_positions(x.shape[1], self.cfg.output_size, device=x.device, dtype=x.dtype)
        for index, layer in enumerate(self.encoders):
            x = layer(x, key_padding, pos_emb, erg_scale if index in erg_layers else 1.0)
        return self.after_norm(x)
