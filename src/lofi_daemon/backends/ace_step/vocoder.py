"""The ACE-Step mel vocoder (``music_vocoder/``): ConvNeXt backbone + HiFi-GAN head.

    mel [B, 128, T] --backbone--> [B, num_mels, T] --head--> wav [B, 1, 512*T] (44.1 kHz)

Backbone: a stem (Conv1d k=7 with *replicate* padding + channels-first LayerNorm), then per
stage a channels-first LayerNorm + 1x1 Conv1d (between stages) and ConvNeXt blocks
(depthwise Conv1d, LayerNorm, Linear x4, exact GELU, Linear, layer scale ``gamma``,
residual), then a final LayerNorm. Head: weight-normed Conv1d, then per upsampling stage
SiLU -> ConvTranspose1d -> the mean of the parallel multi-kernel residual blocks, then
SiLU -> Conv1d -> tanh.

Parameter names mirror the official ``ADaMoSHiFiGANV1`` so ``diffusion_pytorch_model.safetensors``
loads unchanged. The checkpoint stores weight norm the old way (``weight_g`` and ``weight_v``,
``w = g * v / ||v||`` with the norm over every dim but 0); we fold that into plain conv
weights once at load time, so inference does not recompute it per call. The mel-analysis
buffers (``mel_transform.*``, only used to *encode* audio) are not loaded.

Everything is a local convolution (no attention, no global statistics), so the output at
a sample depends only on nearby mel frames: ``receptive_field_frames()`` says how many,
which is what lets ``decode.py`` run it over overlapping windows with seams that are
exact up to float rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ModelLoadFailed
from .checkpoint import load_exact


@dataclass(frozen=True)
class VocoderConfig:
    """The ``config.json`` keys that shape the network (defaults: the real v1-3.5B vocoder)."""

    input_channels: int = 128
    depths: tuple[int, ...] = (3, 3, 9, 3)
    dims: tuple[int, ...] = (128, 256, 384, 512)
    kernel_sizes: tuple[int, ...] = (7,)
    upsample_rates: tuple[int, ...] = (4, 4, 2, 2, 2, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (8, 8, 4, 4, 4, 4, 4)
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11, 13)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5),) * 4
    num_mels: int = 512
    upsample_initial_channel: int = 1024
    use_template: bool = False
    pre_conv_kernel_size: int = 13
    post_conv_kernel_size: int = 13
    sampling_rate: int = 44100
    hop_length: int = 512
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "VocoderConfig":
        known = {f.name for f in fields(cls)} - {"extra"}
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in known:
                continue
            if isinstance(value, list):
                value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
            values[key] = value
        config = cls(**values, extra={k: v for k, v in raw.items() if k not in known})
        config.validate()
        return config

    def validate(self) -> None:
        problems = []
        if len(self.depths) != len(self.dims):
            problems.append("depths and dims differ in length")
        if math.prod(self.upsample_rates) != self.hop_length:
            problems.append(f"prod(upsample_rates)={math.prod(self.upsample_rates)} != hop_length={self.hop_length}")
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            problems.append("upsample_rates and upsample_kernel_sizes differ in length")
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            problems.append("resblock_kernel_sizes and resblock_dilation_sizes differ in length")
        if self.use_template:
            problems.append("use_template=true (a pitch template input) is not used by ACE-Step and not supported")
        if problems:
            raise ModelLoadFailed(
                "music_vocoder/config.json is not a vocoder this code can build: " + "; ".join(problems),
                hint="Run :LofiSetup ace-step again to restore the official files.",
            )


class ChannelsFirstLayerNorm(nn.Module):
    """LayerNorm over dim 1 of ``[B, C, T]``, written out like the official one."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None] * x + self.bias[:, None]


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int, kernel_size: int = 7, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=(kernel_size - 1) // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, int(mlp_ratio * dim))
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(int(mlp_ratio * dim), dim)
        self.gamma = nn.Parameter(torch.ones(dim), requires_grad=False)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).transpose(1, 2)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        return (self.gamma * y).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


class ParallelConvNeXtBlock(nn.Module):
    """Several ConvNeXt branches with different kernels summed with the input (config
    ``kernel_sizes`` with more than one entry; the released vocoder has one)."""

    def __init__(self, dim: int, kernel_sizes: tuple[int, ...]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(ConvNeXtBlock(dim, k) for k in kernel_sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([b.branch(x) for b in self.blocks] + [x], dim=1).sum(dim=1)


class ConvNeXtBackbone(nn.Module):
    def __init__(self, config: VocoderConfig) -> None:
        super().__init__()
        dims = config.dims
        self.channel_layers = nn.ModuleList(
            [
                nn.Sequential(
                    nn.Conv1d(config.input_channels, dims[0], 7, padding=3, padding_mode="replicate"),
                    ChannelsFirstLayerNorm(dims[0]),
                )
            ]
            + [nn.Sequential(ChannelsFirstLayerNorm(dims[i]), nn.Conv1d(dims[i], dims[i + 1], 1)) for i in range(len(dims) - 1)]
        )

        def block(dim: int) -> nn.Module:
            if len(config.kernel_sizes) == 1:
                return ConvNeXtBlock(dim, config.kernel_sizes[0])
            return ParallelConvNeXtBlock(dim, config.kernel_sizes)

        self.stages = nn.ModuleList(
            nn.Sequential(*[block(dim) for _ in range(depth)]) for depth, dim in zip(config.depths, dims)
        )
        self.norm = ChannelsFirstLayerNorm(dims[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for channel_layer, stage in zip(self.channel_layers, self.stages):
            x = stage(channel_layer(x))
        return self.norm(x)


def _same_padding(kernel_size: int, dilation: int = 1) -> int:
    return (kernel_size * dilation - dilation) // 2


class ResBlock(nn.Module):
    """HiFi-GAN ResBlock1: three (SiLU, dilated conv, SiLU, conv) residual pairs."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=_same_padding(kernel_size, d)) for d in dilations
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, padding=_same_padding(kernel_size)) for _ in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            x = x + c2(F.silu(c1(F.silu(x))))
        return x


class HiFiGANHead(nn.Module):
    def __init__(self, config: VocoderConfig) -> None:
        super().__init__()
        c0 = config.upsample_initial_channel
        self.conv_pre = nn.Conv1d(config.num_mels, c0, config.pre_conv_kernel_size, padding=_same_padding(config.pre_conv_kernel_size))
        self.ups = nn.ModuleList(
            nn.ConvTranspose1d(c0 // 2**i, c0 // 2 ** (i + 1), k, u, padding=(k - u) // 2)
            for i, (u, k) in enumerate(zip(config.upsample_rates, config.upsample_kernel_sizes))
        )
        self.num_kernels = len(config.resblock_kernel_sizes)
        self.resblocks = nn.ModuleList(
            ResBlock(c0 // 2 ** (i + 1), k, tuple(d))
            for i in range(len(self.ups))
            for k, d in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes)
        )
        last = c0 // 2 ** len(self.ups)
        self.conv_post = nn.Conv1d(last, 1, config.post_conv_kernel_size, padding=_same_padding(config.post_conv_kernel_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(x)
        for i, up in enumerate(self.ups):
            x = up(F.silu(x))
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            total = blocks[0](x)
            for block in blocks[1:]:
                total = total + block(x)
            x = total / self.num_kernels
        return torch.tanh(self.conv_post(F.silu(x)))


class MusicVocoder(nn.Module):
    """mel ``[B, 128, T]`` (log-mel, about [-11, 3]) -> waveform ``[B, 1, hop*T]``."""

    def __init__(self, config: VocoderConfig | None = None) -> None:
        super().__init__()
        self.config = config or VocoderConfig()
        self.backbone = ConvNeXtBackbone(self.config)
        self.head = HiFiGANHead(self.config)

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def sample_rate(self) -> int:
        return self.config.sampling_rate

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(mel))

    decode = forward

    def receptive_field_frames(self) -> int:
        """Mel frames on each side that can influence an output sample (rounded up).

        Backbone: the stem and every depthwise conv reach (k-1)/2 frames. Head: conv_pre in
        frames, then per stage the transposed conv (about one input step) and the widest
        residual block (sum of its dilated reaches), converted to frames by the stage's
        samples-per-frame, then conv_post at the output rate.
        """
        cfg = self.config
        reach = 3.0 + sum(depth * (max(cfg.kernel_sizes) - 1) / 2 for depth in cfg.depths)
        reach += _same_padding(cfg.pre_conv_kernel_size)
        rate = 1
        for u, k in zip(cfg.upsample_rates, cfg.upsample_kernel_sizes):
            reach += math.ceil(k / u) / rate  # input steps of the transposed conv, at the previous rate
            rate *= u
            widest = max(
                sum(_same_padding(ks, d) + _same_padding(ks) for d in dil)
                for ks, dil in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes)
            )
            reach += widest / rate
        reach += _same_padding(cfg.post_conv_kernel_size) / rate
        return math.ceil(reach)

    @classmethod
    def from_pretrained(
        cls, folder: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> "MusicVocoder":
        """Build from ``music_vocoder/config.json`` and load its safetensors (weight norm folded)."""
        from .checkpoint import read_config

        folder = Path(folder)
        config = VocoderConfig.from_dict(read_config(folder))
        with torch.device("meta"):
            model = cls(config)
        # The mel-analysis buffers only serve encoding; weight norm is folded in float32.
        weights = read_component_weights(folder, keep=lambda key: not key.startswith("mel_transform."))
        load_exact(model, _fold_weight_norm(weights), "music_vocoder")
        return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


def read_component_weights(
    folder: Path, *, keep: "Callable[[str], bool]" = lambda _key: True
) -> dict[str, torch.Tensor]:
    """The float32 CPU tensors of a checkpoint component folder whose names ``keep`` accepts
    (single or sharded safetensors; unreadable files become MODEL_LOAD_FAILED)."""
    from .checkpoint import load_state_dict, weight_files

    return load_state_dict(weight_files(folder), dtype=torch.float32, device="cpu", skip=lambda key: not keep(key))


def _fold_weight_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Replace each ``*.weight_g`` / ``*.weight_v`` pair by ``*.weight = g * v / ||v||``."""
    out = {k: v for k, v in state.items() if not k.endswith((".weight_g", ".weight_v"))}
    for key in [k for k in state if k.endswith(".weight_g")]:
        stem = key[: -len(".weight_g")]
        g = state[key].float()
        v = state.get(stem + ".weight_v")
        if v is None:
            raise ModelLoadFailed(f"music_vocoder weights have {key} without {stem}.weight_v", hint="Run :LofiSetup ace-step again.")
        v = v.float()
        norm = v.pow(2).sum(dim=tuple(range(1, v.dim())), keepdim=True).sqrt()
        out[stem + ".weight"] = v * (g / norm)
    return out


