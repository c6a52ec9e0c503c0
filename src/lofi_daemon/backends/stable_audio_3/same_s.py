"""SAME-S, Stable Audio 3 Small's autoencoder: 44.1 kHz stereo <-> 256-d latents, 4096x down.

Our own module, because diffusers' ``AutoencoderSAME`` implements SAME-L only (a dense band
mask over the whole sequence, a kernel-1 decoder mapping). SAME-S attends in fixed blocks:

* audio is cut into patches (``patch_size`` samples per channel -> ``2*patch_size`` channels);
* each latent is one *segment* of ``stride + 1`` tokens (encoder: 16 patch frames and one
  learned token whose output becomes the latent; decoder: the latent and 16 learned tokens
  whose outputs become the frames);
* the transformer layers attend inside blocks of ``chunk_size // stride = 2`` segments
  (34 tokens). The first half of the layers use blocks aligned at even latents; the second
  half shift the blocks by one segment (the first and last segments are repeated as edge
  padding, then dropped), so information crosses every block border once.

Attention is *differential*: ``softmax(q k) v - softmax(q' k') v`` with DyT norms on q and k
and a half-width NeoX RoPE whose positions restart in each block. Because every block is
computed on its own, memory grows linearly with the track, and a window decoded with two
latents of context on each side reproduces the full decode (``decode_windows``). Keep this
module in fp32: the differential attention cancels catastrophically in fp16.

The official inference path adds small noise in two places (decoder new tokens, SoftNorm
decode); the MLX port and diffusers leave it out, and so do we.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class SameSConfig:
    """Shapes of one SAME-S; the defaults are the released Small checkpoint."""

    patch_size: int = 256
    audio_channels: int = 2
    width: int = 768
    latent_dim: int = 256
    stride: int = 16
    depth: int = 6
    head_dim: int = 64
    chunk_size: int = 32
    ff_mult: int = 3
    decoder_kernel: int = 3
    encoder_kernel: int = 1
    blocks_per_group: int = 16  # attention blocks run together (16 x 34 tokens = 3 s of audio)

    def __post_init__(self) -> None:
        if self.chunk_size % self.stride or (self.chunk_size // self.stride) % 2:
            raise ValueError("SAME-S needs chunk_size // stride to be an even number of latents")
        if self.width % self.head_dim or self.head_dim % 4:
            raise ValueError("width must split into heads whose size divides by 4 (half-width RoPE)")

    @property
    def patch_channels(self) -> int:
        return self.audio_channels * self.patch_size

    @property
    def samples_per_latent(self) -> int:
        return self.patch_size * self.stride

    @property
    def latents_per_block(self) -> int:
        return self.chunk_size // self.stride

    @property
    def segment(self) -> int:
        return self.stride + 1


def _in_tiles(fn, x: torch.Tensor, rows: int) -> torch.Tensor:
    """``fn`` over dim 1 in zero-filled tiles of ``rows``: a matrix product's rounding can depend
    on how many rows it gets, so fixed tiles make a window's rows equal the whole track's."""
    count = x.shape[1]
    x = F.pad(x, (0, 0, 0, -count % rows))
    return torch.cat([fn(x[:, i:i + rows]) for i in range(0, x.shape[1], rows)], dim=1)[:, :count]


class DynamicTanh(nn.Module):
    """DyT, the norm SAME uses everywhere: ``gamma * tanh(alpha * x) + beta``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.full((1,), 4.0))
        self.gamma = nn.Parameter(torch.ones(dim))
        self.beta = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gamma * torch.tanh(self.alpha * x) + self.beta


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """NeoX rotation of the first ``cos.shape[-1]`` dims; the rest pass through."""
    rot = cos.shape[-1]
    head, tail = x[..., :rot], x[..., rot:]
    first, second = head.chunk(2, dim=-1)
    rotated = torch.cat((-second, first), dim=-1)
    return torch.cat((head * cos + rotated * sin, tail), dim=-1)


class DifferentialAttention(nn.Module):
    """Self-attention within one block; ``to_qkv`` holds ``[q | k | v | q' | k']``."""

    def __init__(self, dim: int, head_dim: int) -> None:
        super().__init__()
        self.heads = dim // head_dim
        self.head_dim = head_dim
        self.to_qkv = nn.Linear(dim, dim * 5, bias=False)
        self.to_out = nn.Linear(dim, dim, bias=False)
        self.q_norm = DynamicTanh(head_dim)
        self.k_norm = DynamicTanh(head_dim)
        rot = head_dim // 2
        self.register_buffer("inv_freq", 1.0 / (10000.0 ** (torch.arange(0, rot, 2).float() / rot)),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        parts = self.to_qkv(x).view(batch, length, 5, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v, q_diff, k_diff = parts.unbind(0)
        positions = torch.arange(length, device=x.device, dtype=torch.float32)
        freqs = torch.outer(positions, self.inv_freq)
        freqs = torch.cat((freqs, freqs), dim=-1)
        cos, sin = freqs.cos(), freqs.sin()
        q, q_diff = (_rope(self.q_norm(t), cos, sin) for t in (q, q_diff))
        k, k_diff = (_rope(self.k_norm(t), cos, sin) for t in (k, k_diff))
        out = F.scaled_dot_product_attention(q, k, v) - F.scaled_dot_product_attention(q_diff, k_diff, v)
        return self.to_out(out.transpose(1, 2).reshape(batch, length, dim))


class SwiGLU(nn.Module):
    def __init__(self, dim: int, mult: int) -> None:
        super().__init__()
        self.proj_in = nn.Linear(dim, dim * mult * 2)
        self.proj_out = nn.Linear(dim * mult, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj_in(x).chunk(2, dim=-1)
        return self.proj_out(value * F.silu(gate))


class SameLayer(nn.Module):
    def __init__(self, config: SameSConfig) -> None:
        super().__init__()
        self.norm_attn = DynamicTanh(config.width)
        self.attn = DifferentialAttention(config.width, config.head_dim)
        self.norm_ff = DynamicTanh(config.width)
        self.ff = SwiGLU(config.width, config.ff_mult)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm_attn(x))
        return x + self.ff(self.norm_ff(x))


class ChunkedStack(nn.Module):
    """The layers, attending in blocks of two segments, the second half shifted by one."""

    def __init__(self, config: SameSConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(SameLayer(config) for _ in range(config.depth))
        self.block = config.latents_per_block * config.segment
        self.shift = self.block // 2
        self.split = config.depth // 2
        self.group = config.blocks_per_group

    def _blocks(self, x: torch.Tensor, layers: nn.ModuleList) -> torch.Tensor:
        batch, length, dim = x.shape
        blocks = x.reshape(batch * (length // self.block), self.block, dim)
        count = blocks.shape[0]
        # Fixed-size groups (the last one zero-filled): every matrix product then has the same
        # shape wherever a block sits, so a window decodes bit for bit as in the whole track,
        # and the working memory is one group's, whatever the length.
        blocks = F.pad(blocks, (0, 0, 0, 0, 0, -count % self.group))
        out = torch.empty_like(blocks)
        for first in range(0, blocks.shape[0], self.group):
            y = blocks[first:first + self.group]
            for layer in layers:
                y = layer(y)
            out[first:first + self.group] = y
        return out[:count].reshape(batch, length, dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self._blocks(tokens, self.layers[: self.split])
        s = self.shift
        x = torch.cat([x[:, :s], x, x[:, -s:]], dim=1)
        return self._blocks(x, self.layers[self.split:])[:, s:-s]


class SameSEncoder(nn.Module):
    def __init__(self, config: SameSConfig) -> None:
        super().__init__()
        self.config = config
        k = config.encoder_kernel
        self.mapping = nn.Conv1d(config.patch_channels, config.width, k, padding=k // 2)
        self.new_tokens = nn.Parameter(torch.zeros(1, 1, config.width))
        self.stack = ChunkedStack(config)
        self.to_latent = nn.Linear(config.width, config.latent_dim)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        frames = patches.shape[-1]
        patches = F.pad(patches, (0, -frames % cfg.chunk_size))
        x = self.mapping(patches).transpose(1, 2)  # (B, frames, width)
        batch, frames, width = x.shape
        n = frames // cfg.stride
        x = x.reshape(batch, n, cfg.stride, width)
        x = torch.cat([x, self.new_tokens.expand(batch, n, 1, width)], dim=2)
        x = self.stack(x.reshape(batch, n * cfg.segment, width))
        x = x.reshape(batch, n, cfg.segment, width)[:, :, -1]
        return self.to_latent(x).transpose(1, 2)  # (B, latent_dim, n)


class SameSDecoder(nn.Module):
    def __init__(self, config: SameSConfig) -> None:
        super().__init__()
        self.config = config
        k = config.decoder_kernel
        self.from_latent = nn.Linear(config.latent_dim, config.width)
        self.new_tokens = nn.Parameter(torch.zeros(1, 1, config.width))
        self.stack = ChunkedStack(config)
        self.mapping = nn.Conv1d(config.width, config.patch_channels, k, padding=k // 2)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        x = _in_tiles(self.from_latent, latents.transpose(1, 2), cfg.blocks_per_group * cfg.latents_per_block)
        n_real = x.shape[1]
        x = F.pad(x, (0, 0, 0, -n_real % cfg.latents_per_block))
        batch, n, width = x.shape
        fresh = self.new_tokens.expand(batch * n, cfg.stride, width).reshape(batch, n, cfg.stride, width)
        x = torch.cat([x.unsqueeze(2), fresh], dim=2).reshape(batch, n * cfg.segment, width)
        x = self.stack(x).reshape(batch, n, cfg.segment, width)[:, :, 1:]
        x = x.reshape(batch, n * cfg.stride, width).transpose(1, 2)
        frames = self._map_in_tiles(x, cfg.blocks_per_group * cfg.latents_per_block * cfg.stride)
        return frames[..., : n_real * cfg.stride]  # (B, patch_channels, frames)

    def _map_in_tiles(self, x: torch.Tensor, tile: int) -> torch.Tensor:
        """The output conv over fixed-length tiles with a one-frame halo (see ``_in_tiles``)."""
        halo = self.mapping.kernel_size[0] // 2
        length = x.shape[-1]
        x = F.pad(x, (halo, halo + (-length % tile)))
        weight, bias = self.mapping.weight, self.mapping.bias
        pieces = [F.conv1d(x[..., i:i + tile + 2 * halo], weight, bias) for i in range(0, length, tile)]
        return torch.cat(pieces, dim=-1)[..., :length]


class SameS(nn.Module):
    """Encoder, decoder and the SoftNorm bottleneck between them."""

    def __init__(self, config: SameSConfig | None = None) -> None:
        super().__init__()
        self.config = config or SameSConfig()
        self.encoder = SameSEncoder(self.config)
        self.decoder = SameSDecoder(self.config)
        dim = self.config.latent_dim
        self.latent_scale = nn.Parameter(torch.ones(1, dim, 1))
        self.latent_bias = nn.Parameter(torch.zeros(1, dim, 1))
        self.running_std = nn.Parameter(torch.ones(1), requires_grad=False)

    @property
    def samples_per_latent(self) -> int:
        return self.config.samples_per_latent

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """``(B, 2, samples)`` -> ``(B, latent_dim, latents)``; audio is zero-padded to whole chunks."""
        cfg = self.config
        audio = F.pad(audio, (0, -audio.shape[-1] % cfg.patch_size))
        batch, channels, samples = audio.shape
        patches = audio.reshape(batch, channels, samples // cfg.patch_size, cfg.patch_size)
        patches = patches.permute(0, 1, 3, 2).reshape(batch, channels * cfg.patch_size, -1)
        latents = self.encoder(patches)
        return (latents * self.latent_scale + self.latent_bias) / self.running_std

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """``(B, latent_dim, n)`` -> ``(B, 2, n * samples_per_latent)`` in one pass."""
        cfg = self.config
        patches = self.decoder(latents * self.running_std)
        batch, _, frames = patches.shape
        audio = patches.reshape(batch, cfg.audio_channels, cfg.patch_size, frames)
        return audio.permute(0, 1, 3, 2).reshape(batch, cfg.audio_channels, frames * cfg.patch_size)

    def decode_windows(self, latents: torch.Tensor, core: int = 64, context: int = 2
                       ) -> Iterator[tuple[int, torch.Tensor]]:
        """Decode in windows of ``core`` latents plus ``context`` on each side; yields
        ``(first_sample, audio)`` in order. With even ``core`` and ``context >= 2`` the pieces,
        joined, are the one-pass decode (the receptive field is two latents and one frame)."""
        align = self.config.latents_per_block
        if core < align or core % align or context % align or context < 0:
            raise ValueError(f"core and context must be multiples of {align} latents")
        total = latents.shape[-1]
        step = self.samples_per_latent
        for start in range(0, total, core):
            end = min(start + core, total)
            lo, hi = max(0, start - context), min(total, end + context)
            audio = self.decode(latents[..., lo:hi])
            yield start * step, audio[..., (start - lo) * step:(end - lo) * step]
