"""The ACE-Step v1 diffusion transformer (``ace_step_transformer/``), inference only.

    latents [B, 8, 16, F] --PatchEmbed--> tokens [B, F, W]
    t --sinusoid(256)--> TimestepEmbedding = embedded_timestep [B, W] --SiLU, Linear--> temb [B, 6W]
    N x LinearTransformerBlock(adaLN-single with temb):
        x + gate * LinearSelfAttn(RMSNorm(x) * (1 + scale) + shift)
        + CrossAttn(x, encoder states)                  (no norm, no gate)
        + gate * GLUMBConv(RMSNorm(x) * (1 + scale) + shift)
    FinalLayer(modulated by embedded_timestep, not temb) -> unpatchify -> [B, 8, 16, F]

``encode()`` builds the encoder states ``[speaker | text | lyrics]`` once per generation;
``decode()`` runs once per denoising call. Module and parameter names mirror the official
``ACEStepTransformer2DModel`` so its checkpoint loads unchanged. Training-only parts (SSL
``projectors``) and the dead cross-attention ``add_*`` projections are not built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .attention import CrossAttention, LinearSelfAttention, cross_attention_mask
from .lyric_encoder import ConformerEncoder, LyricEncoderConfig
from .rope import rope_tables

#: Blocks whose query projections the official ERG-diffusion hooks scale (15..19).
ERG_DIFFUSION_BLOCKS = tuple(range(15, 20))
ERG_SCALE = 0.01


@dataclass(frozen=True)
class TransformerConfig:
    in_channels: int = 8
    num_layers: int = 24
    attention_head_dim: int = 128
    num_attention_heads: int = 20
    mlp_ratio: float = 2.5
    out_channels: int = 8
    rope_theta: float = 1_000_000.0
    speaker_embedding_dim: int = 512
    text_embedding_dim: int = 768
    lyric_encoder_vocab_size: int = 6693
    lyric_hidden_size: int = 1024
    patch_size: tuple[int, int] = (16, 1)
    lyric_encoder: LyricEncoderConfig = field(default_factory=LyricEncoderConfig)

    @property
    def inner_dim(self) -> int:
        # The official model overwrites config.json's ``inner_dim`` with heads * head_dim.
        return self.num_attention_heads * self.attention_head_dim

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> "TransformerConfig":
        """Read the official ``config.json`` (unknown keys such as the SSL ones are ignored)."""
        lyric = raw.get("lyric_encoder_config") or {}
        defaults = cls()
        return cls(
            in_channels=int(raw.get("in_channels", defaults.in_channels)),
            num_layers=int(raw.get("num_layers", defaults.num_layers)),
            attention_head_dim=int(raw.get("attention_head_dim", defaults.attention_head_dim)),
            num_attention_heads=int(raw.get("num_attention_heads", defaults.num_attention_heads)),
            mlp_ratio=float(raw.get("mlp_ratio", defaults.mlp_ratio)),
            out_channels=int(raw.get("out_channels", defaults.out_channels)),
            rope_theta=float(raw.get("rope_theta", defaults.rope_theta)),
            speaker_embedding_dim=int(raw.get("speaker_embedding_dim", defaults.speaker_embedding_dim)),
            text_embedding_dim=int(raw.get("text_embedding_dim", defaults.text_embedding_dim)),
            lyric_encoder_vocab_size=int(raw.get("lyric_encoder_vocab_size", defaults.lyric_encoder_vocab_size)),
            lyric_hidden_size=int(raw.get("lyric_hidden_size", defaults.lyric_hidden_size)),
            patch_size=tuple(raw.get("patch_size", defaults.patch_size)),  # type: ignore[arg-type]
            lyric_encoder=LyricEncoderConfig(
                **{k: int(v) for k, v in lyric.items() if k in LyricEncoderConfig.__dataclass_fields__}
            ),
        )


def rms_norm(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """diffusers' affine-free RMSNorm: statistics in float32, result in the input dtype."""
    variance = x.to(torch.float32).pow(2).mean(-1, keepdim=True)
    return (x * torch.rsqrt(variance + eps)).to(x.dtype)


def timestep_sinusoid(timesteps: torch.Tensor, dim: int = 256, max_period: float = 10000.0) -> torch.Tensor:
    """diffusers ``Timesteps(dim, flip_sin_to_cos=True, downscale_freq_shift=0)``: [cos | sin]."""
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(0, half, dtype=torch.float32, device=timesteps.device) / half
    angles = timesteps[:, None].float() * torch.exp(exponent)[None, :]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


class TimestepEmbedding(nn.Module):
    def __init__(self, in_channels: int, dim: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(in_channels, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(x)))


class PatchEmbed(nn.Module):
    """Conv (16x1 patches, 8 -> 2048) -> GroupNorm(32) -> 1x1 conv to the model width."""

    def __init__(self, in_channels: int, dim: int, patch_size: tuple[int, int]) -> None:
        super().__init__()
        hidden = in_channels * 256  # fixed by the official code, independent of the width
        self.early_conv_layers = nn.Sequential(
            nn.Conv2d(in_channels, hidden, kernel_size=patch_size, stride=patch_size),
            nn.GroupNorm(num_groups=32, num_channels=hidden, eps=1e-6, affine=True),
            nn.Conv2d(hidden, dim, kernel_size=1),
        )

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        # Contiguous tokens: otherwise the transposed layout propagates through every block
        # and each Linear falls back to a batched matmul over an expanded weight.
        return self.early_conv_layers(latents).flatten(2).transpose(1, 2).contiguous()


class _Conv(nn.Module):
    """Holds ``conv`` so the parameter names match the official ``ConvLayer``."""

    def __init__(self, conv: nn.Conv1d) -> None:
        super().__init__()
        self.conv = conv


class GLUMBConv(nn.Module):
    """1x1 conv (W -> 2H) + SiLU -> depthwise conv k=3 -> x * SiLU(gate) -> 1x1 conv (H -> W).

    Computed token-major (``[B, S, C]``, no transposes): a 1x1 convolution is a matrix
    multiply, so the two pointwise convs run as ``F.linear`` on their own weights (the CPU
    conv path sends a 1x1 conv at one thread to the slow im2col kernel), and the 3-tap
    depthwise conv is three shifted multiply-adds along the tokens. Same numbers up to
    float rounding.
    """

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.inverted_conv = _Conv(nn.Conv1d(dim, hidden * 2, 1, bias=True))
        self.depth_conv = _Conv(nn.Conv1d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=True))
        self.point_conv = _Conv(nn.Conv1d(hidden, dim, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inverted, depth, point = self.inverted_conv.conv, self.depth_conv.conv, self.point_conv.conv
        h = F.silu(F.linear(x, inverted.weight.flatten(1), inverted.bias))  # [B, S, 2H]
        taps = depth.weight.flatten(1)  # [2H, 3]: taps at token s-1, s, s+1 (zero padding)
        y = torch.addcmul(depth.bias, h, taps[:, 1])
        y[:, 1:].addcmul_(h[:, :-1], taps[:, 0])
        y[:, :-1].addcmul_(h[:, 1:], taps[:, 2])
        del h
        x, gate = y.chunk(2, dim=-1)
        return F.linear(x * F.silu(gate), point.weight.flatten(1))


@dataclass
class DecodeContext:
    """Per-forward tensors every block shares (built once in ``decode``)."""

    temb: torch.Tensor
    rope: tuple[torch.Tensor, torch.Tensor]
    context_rope: tuple[torch.Tensor, torch.Tensor]
    latent_mask: torch.Tensor
    cross_mask: torch.Tensor


class LinearTransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.attn = LinearSelfAttention(dim, heads)
        self.cross_attn = CrossAttention(dim, heads)
        self.ff = GLUMBConv(dim, int(dim * mlp_ratio))
        self.scale_shift_table = nn.Parameter(torch.empty(6, dim))

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, ctx: DecodeContext, q_scale: torch.Tensor | None
    ) -> torch.Tensor:
        batch = x.shape[0]
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = (
            self.scale_shift_table[None] + ctx.temb.reshape(batch, 6, -1)
        ).chunk(6, dim=1)
        h = rms_norm(x) * (1 + scale_msa) + shift_msa
        x = x + gate_msa * self.attn(h, ctx.rope, ctx.latent_mask, q_scale)
        x = x + self.cross_attn(x, context, ctx.rope, ctx.context_rope, ctx.cross_mask, q_scale)
        h = rms_norm(x) * (1 + scale_mlp) + shift_mlp
        return x + gate_mlp * self.ff(h)


class FinalLayer(nn.Module):
    def __init__(self, dim: int, patch_size: tuple[int, int], out_channels: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.out_channels = out_channels
        self.linear = nn.Linear(dim, patch_size[0] * patch_size[1] * out_channels)
        self.scale_shift_table = nn.Parameter(torch.empty(2, dim))

    def forward(self, x: torch.Tensor, embedded_timestep: torch.Tensor, output_length: int) -> torch.Tensor:
        shift, scale = (self.scale_shift_table[None] + embedded_timestep[:, None]).chunk(2, dim=1)
        x = F.rms_norm(x, (x.shape[-1],), eps=1e-6) * (1 + scale) + shift
        x = self.linear(x)
        batch, width = x.shape[0], x.shape[1]
        ph, pw = self.patch_size
        x = x.reshape(batch, 1, width, ph, pw, self.out_channels)
        x = torch.einsum("nhwpqc->nchpwq", x).reshape(batch, self.out_channels, ph, width * pw)
        if output_length > width:
            x = F.pad(x, (0, output_length - width))
        return x[..., :output_length]


class AceStepTransformer(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        # Compiled blocks: every block gets the same arguments (see decode), so one graph serves.
        self.uniform_block_args = False
        dim = config.inner_dim
        self.transformer_blocks = nn.ModuleList(
            [
                LinearTransformerBlock(dim, config.num_attention_heads, config.mlp_ratio)
                for _ in range(config.num_layers)
            ]
        )
        self.timestep_embedder = TimestepEmbedding(256, dim)
        self.t_block = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        self.speaker_embedder = nn.Linear(config.speaker_embedding_dim, dim)
        self.genre_embedder = nn.Linear(config.text_embedding_dim, dim)
        self.lyric_embs = nn.Embedding(config.lyric_encoder_vocab_size, config.lyric_hidden_size)
        self.lyric_encoder = ConformerEncoder(config.lyric_hidden_size, config.lyric_encoder)
        self.lyric_proj = nn.Linear(config.lyric_hidden_size, dim)
        self.proj_in = PatchEmbed(config.in_channels, dim, config.patch_size)
        self.final_layer = FinalLayer(dim, config.patch_size, config.out_channels)

    @property
    def dtype(self) -> torch.dtype:
        return self.final_layer.linear.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.final_layer.linear.weight.device

    def forward_lyric_encoder(
        self, lyric_token_idx: torch.Tensor, lyric_mask: torch.Tensor, *, erg: bool = False
    ) -> torch.Tensor:
        erg_layers = (4, 5) if erg else ()
        hidden = self.lyric_encoder(self.lyric_embs(lyric_token_idx), lyric_mask, erg_layers, ERG_SCALE)
        return self.lyric_proj(hidden)

    def encode(
        self,
        encoder_text_hidden_states: torch.Tensor,
        text_attention_mask: torch.Tensor,
        speaker_embeds: torch.Tensor,
        lyric_token_idx: torch.Tensor,
        lyric_mask: torch.Tensor,
        *,
        erg_lyric: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder states ``[speaker(1) | text(L) | lyrics(T)]`` and their float mask.

        ``erg_lyric`` scales the queries of lyric-encoder blocks 4 and 5 by 0.01 (the
        official ERG-lyric hooks of the unconditional branch).
        """
        batch = encoder_text_hidden_states.shape[0]
        device = encoder_text_hidden_states.device
        speaker = self.speaker_embedder(speaker_embeds).unsqueeze(1)
        text = self.genre_embedder(encoder_text_hidden_states)
        lyrics = self.forward_lyric_encoder(lyric_token_idx, lyric_mask, erg=erg_lyric)
        states = torch.cat([speaker, text, lyrics], dim=1)
        speaker_mask = torch.ones(batch, 1, device=device)
        mask = torch.cat([speaker_mask, text_attention_mask.to(speaker_mask.dtype), lyric_mask.to(speaker_mask.dtype)], dim=1)
        return states, mask

    def decode(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        encoder_hidden_mask: torch.Tensor,
        timestep: torch.Tensor,
        output_length: int | None = None,
        *,
        erg_diffusion: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One denoising call: velocity ``[B, 8, 16, F]``.

        ``erg_diffusion`` (bool ``[B]``) marks the batch items whose self- and
        cross-attention queries in blocks 15..19 are scaled by 0.01 (ERG-diffusion).
        """
        if output_length is None:
            output_length = hidden_states.shape[-1]
        dtype = hidden_states.dtype
        embedded_timestep = self.timestep_embedder(timestep_sinusoid(timestep).to(dtype))
        temb = self.t_block(embedded_timestep)
        x = self.proj_in(hidden_states)

        head_dim = self.config.attention_head_dim
        rope = rope_tables(x.shape[1], head_dim, self.config.rope_theta, device=x.device, dtype=x.dtype)
        context_rope = rope_tables(
            encoder_hidden_states.shape[1], head_dim, self.config.rope_theta, device=x.device, dtype=x.dtype
        )
        erg_q_scale = None
        if erg_diffusion is not None and bool(erg_diffusion.any()):
            if len(self.transformer_blocks) <= ERG_DIFFUSION_BLOCKS[-1]:
                raise IndexError(
                    f"ERG-diffusion needs transformer blocks 15-19; this model has {len(self.transformer_blocks)}"
                )
            # float32 like the official in-place ``output *= 0.01`` computes it.
            ones = torch.ones(erg_diffusion.shape[0], device=x.device, dtype=torch.float32)
            erg_q_scale = torch.where(erg_diffusion.to(x.device), ones * ERG_SCALE, ones)[:, None, None]
        ctx = DecodeContext(
            temb=temb,
            rope=rope,
            context_rope=context_rope,
            latent_mask=attention_mask,
            cross_mask=cross_attention_mask(attention_mask, encoder_hidden_mask, self.config.num_attention_heads),
        )
        # Compiled, with ERG every block gets a query scale (ones outside blocks 15-19: q * 1.0 is
        # exact), so a block needs one graph per batch shape, not two; eager blocks skip the multiply.
        uniform = erg_q_scale is not None and self.uniform_block_args
        plain_q_scale = torch.ones_like(erg_q_scale) if uniform else None
        for index, block in enumerate(self.transformer_blocks):
            q_scale = erg_q_scale if index in ERG_DIFFUSION_BLOCKS else plain_q_scale
            x = block(x, encoder_hidden_states, ctx, q_scale)
        return self.final_layer(x, embedded_timestep, output_length)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor,
        encoder_text_hidden_states: torch.Tensor,
        text_attention_mask: torch.Tensor,
        speaker_embeds: torch.Tensor,
        lyric_token_idx: torch.Tensor,
        lyric_mask: torch.Tensor,
        timestep: torch.Tensor,
    ) -> torch.Tensor:
        """encode() + decode(), like the official ``forward`` (used by the unit parity tests)."""
        states, mask = self.encode(
            encoder_text_hidden_states, text_attention_mask, speaker_embeds, lyric_token_idx, lyric_mask
        )
        return self.decode(hidden_states, attention_mask, states, mask, timestep, hidden_states.shape[-1])
