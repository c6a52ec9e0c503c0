"""The DCAE half of ACE-Step's decode path: latents -> log-mel (``music_dcae_f8c8/``).

    latents [B, 8, 16, F] --(/0.1786 - 1.9091)--> decoder --(*0.5 + 0.5, *14 - 11)--> mel [B, 2, 128, 8F]

The official ``MusicDCAE.decode`` calls the raw ``AutoencoderDC.decoder`` with its own
scale/shift (so the config's ``scaling_factor`` 0.41407 is *not* used) and maps the
decoder's [-1, 1] range to the vocoder's log-mel range [-11, 3]. We build only the
decoder half of diffusers' ``AutoencoderDC`` from the config and read only the
``decoder.*`` tensors: the encoder (half of the file) is never needed for text-to-music,
and that memory goes back to the user.

Bounded-memory decoding (``decode.py`` drives it): the decoder is local convolutions
except for the linear attention in its ``EfficientViTBlock`` stage, which sums over
every position. We split the network in two:

* ``global_stage(z)`` runs everything up to and including the last attention stage at
  latent resolution (small: 16 x F positions), chunk by chunk. Convolutions get a halo
  of neighbouring frames; each attention runs in two passes over the chunks — first
  summing its ``[d+1, d]`` key/value statistics over the *whole* track, then applying
  them chunk by chunk — so the result equals the one-shot attention up to float rounding.
* ``local_tail(h)`` is the rest (upsampling stages, output norm and conv, mel mapping):
  purely local, so any window with ``tail_context_frames()`` of context on each side gives
  exactly the one-shot values in its middle.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ModelLoadFailed
from .checkpoint import load_exact
from .vocoder import read_component_weights

# The official pipeline's constants (MusicDCAE): latent scale/shift and the mel range.
LATENT_SCALE = 0.1786
LATENT_SHIFT = -1.9091
MEL_MIN = -11.0
MEL_MAX = 3.0
MEL_FRAMES_PER_LATENT = 8

# Decoder keyword <- AutoencoderDC config key.
_DECODER_ARGS = {
    "in_channels": "in_channels",
    "latent_channels": "latent_channels",
    "attention_head_dim": "attention_head_dim",
    "block_type": "decoder_block_types",
    "block_out_channels": "decoder_block_out_channels",
    "layers_per_block": "decoder_layers_per_block",
    "qkv_multiscales": "decoder_qkv_multiscales",
    "norm_type": "decoder_norm_types",
    "act_fn": "decoder_act_fns",
    "upsample_block_type": "upsample_block_type",
    "in_shortcut": "decoder_in_shortcut",
    "conv_act_fn": "decoder_conv_act_fn",
}


def latents_to_decoder_input(latents: torch.Tensor) -> torch.Tensor:
    return latents / LATENT_SCALE + LATENT_SHIFT


def decoder_output_to_mel(x: torch.Tensor) -> torch.Tensor:
    x = x * 0.5 + 0.5
    return x * (MEL_MAX - MEL_MIN) + MEL_MIN


def _chunks(length: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, length, size):
        yield start, min(start + size, length)


class DcaeDecoder(nn.Module):
    """The ``AutoencoderDC`` decoder plus the pipeline's latent and mel mappings."""

    def __init__(self, config: dict) -> None:
        super().__init__()
        from diffusers.models.autoencoders.autoencoder_dc import Decoder

        kwargs = {arg: _tuple(config[key]) for arg, key in _DECODER_ARGS.items() if key in config}
        self.config = dict(config)
        self.decoder = Decoder(**kwargs)

    # -- one shot, as the official code does it -------------------------------------------

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        """latents ``[B, 8, 16, F]`` -> mel ``[B, 2, 128, 8F]`` in one pass per batch item."""
        z = latents_to_decoder_input(latents.to(self.dtype))
        mels = [self.decoder(z[i : i + 1]) for i in range(z.shape[0])]
        return decoder_output_to_mel(torch.cat(mels))

    @property
    def dtype(self) -> torch.dtype:
        return self.decoder.conv_in.weight.dtype

    # -- the same computation in two bounded-memory parts ---------------------------------

    def _split(self) -> int:
        """Index (in execution order) of the first up-block after the last attention stage."""
        from diffusers.models.autoencoders.autoencoder_dc import EfficientViTBlock

        order = list(reversed(self.decoder.up_blocks))
        last_global = -1
        for i, block in enumerate(order):
            if any(isinstance(m, EfficientViTBlock) for m in block):
                last_global = i
        return last_global + 1

    def global_layers(self) -> int:
        """How many ``on_layer`` calls ``global_stage`` makes (the stem + each block)."""
        return 1 + sum(len(b) for b in list(reversed(self.decoder.up_blocks))[: self._split()])

    def global_stage(
        self, latents: torch.Tensor, *, chunk_frames: int = 256, on_layer: Callable[[], None] | None = None
    ) -> torch.Tensor:
        """Latents ``[1, 8, 16, F]`` -> the hidden state after the last attention stage.

        Equal to the one-shot decoder's intermediate value up to float rounding, with peak
        memory bounded by ``chunk_frames`` (plus the output itself, 16 x F positions).
        """
        from diffusers.models.autoencoders.autoencoder_dc import DCUpBlock2d, EfficientViTBlock, ResBlock

        dec = self.decoder
        z = latents_to_decoder_input(latents.to(self.dtype))

        def stem(x: torch.Tensor) -> torch.Tensor:
            h = dec.conv_in(x)
            if dec.in_shortcut:
                h = h + x.repeat_interleave(dec.in_shortcut_repeats, dim=1)
            return h

        h = _run_local(stem, z, halo=1, scale=1, chunk=chunk_frames)
        if on_layer is not None:
            on_layer()
        for block in list(reversed(dec.up_blocks))[: self._split()]:
            for layer in block:
                if isinstance(layer, EfficientViTBlock):
                    h = _attention_in_chunks(layer.attn, h, chunk_frames)
                    h = _run_local(layer.conv_out, h, halo=1, scale=1, chunk=chunk_frames)
                elif isinstance(layer, DCUpBlock2d):
                    h = _run_local(layer, h, halo=1, scale=2, chunk=chunk_frames)
                elif isinstance(layer, ResBlock):
                    h = _run_local(layer, h, halo=2, scale=1, chunk=chunk_frames)
                else:  # pragma: no cover - diffusers' decoder has no other block type today
                    raise ModelLoadFailed(f"unexpected DCAE decoder block {type(layer).__name__}")
                if on_layer is not None:
                    on_layer()
        return h

    def local_tail(self, h: torch.Tensor) -> torch.Tensor:
        """The rest of the decoder on (a window of) ``global_stage``'s output -> mel."""
        dec = self.decoder
        for block in list(reversed(dec.up_blocks))[self._split() :]:
            h = block(h)
        h = dec.norm_out(h.movedim(1, -1)).movedim(-1, 1)
        h = dec.conv_out(dec.conv_act(h))
        return decoder_output_to_mel(h)

    def tail_upscale(self) -> int:
        """Output columns per input column of ``local_tail`` (per global-stage frame)."""
        from diffusers.models.autoencoders.autoencoder_dc import DCUpBlock2d

        ups = sum(isinstance(m, DCUpBlock2d) for b in list(reversed(self.decoder.up_blocks))[self._split() :] for m in b)
        ups += isinstance(self.decoder.conv_out, DCUpBlock2d)
        return 2**ups

    def global_downscale(self) -> int:
        """Latent frames per ``global_stage`` output column (1 when attention is at latent resolution)."""
        return MEL_FRAMES_PER_LATENT // self.tail_upscale()

    def tail_context_frames(self) -> int:
        """Columns of ``global_stage`` output each side that can influence a ``local_tail`` output.

        Sums the horizontal reach of every convolution in the tail, each divided by how
        many output columns one input column has become at that point; rounded up, + 1.
        """
        from diffusers.models.autoencoders.autoencoder_dc import DCUpBlock2d

        reach, scale = 0.0, 1
        modules: list[nn.Module] = [m for b in list(reversed(self.decoder.up_blocks))[self._split() :] for m in b]
        modules.append(self.decoder.conv_out)
        for module in modules:
            if isinstance(module, DCUpBlock2d) and module.interpolate:
                scale *= 2  # nearest upsampling first, then its conv at the new resolution
                reach += _conv_reach(module.conv) / scale
                continue
            for conv in (m for m in module.modules() if isinstance(m, nn.Conv2d)):
                reach += _conv_reach(conv) / scale
            if isinstance(module, DCUpBlock2d):  # pixel-shuffle variant: conv, then upsample
                scale *= 2
        return math.ceil(reach) + 1

    @classmethod
    def from_pretrained(
        cls, folder: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> "DcaeDecoder":
        """Build from ``music_dcae_f8c8/config.json``; read only the decoder's tensors."""
        from .checkpoint import read_config

        folder = Path(folder)
        config = read_config(folder)
        try:
            with torch.device("meta"):
                model = cls(config)
        except (TypeError, ValueError, KeyError, AssertionError) as exc:
            raise ModelLoadFailed(
                f"music_dcae_f8c8/config.json does not describe a decoder diffusers can build: {exc}",
                hint="Run :LofiSetup ace-step again to restore the official files.",
            ) from exc
        # Only the decoder half: the encoder (half the file) is never used for text-to-music.
        weights = read_component_weights(folder, keep=lambda key: key.startswith("decoder."))
        state = {key[len("decoder.") :]: tensor for key, tensor in weights.items()}
        load_exact(model.decoder, state, "music_dcae_f8c8 decoder")
        return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


def _tuple(value):
    if isinstance(value, list):
        return tuple(_tuple(v) for v in value)
    return value


def _conv_reach(conv: nn.Conv2d) -> float:
    return (conv.kernel_size[1] // 2) * conv.dilation[1]


def _run_local(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *, halo: int, scale: int, chunk: int) -> torch.Tensor:
    """``fn(x)`` for a width-local ``fn`` (output column j*scale.. depends on input j±halo),
    computed ``chunk`` input columns at a time. Exact: every chunk sees its real neighbours."""
    width = x.shape[-1]
    if width <= chunk:
        return fn(x)
    out: torch.Tensor | None = None
    for start, stop in _chunks(width, chunk):
        lo, hi = max(0, start - halo), min(width, stop + halo)
        y = fn(x[..., lo:hi])
        y = y[..., (start - lo) * scale : (stop - lo) * scale]
        if out is None:
            out = y.new_empty(*y.shape[:-1], width * scale)
        out[..., start * scale : stop * scale] = y
    assert out is not None
    return out


def _attention_in_chunks(attn: nn.Module, x: torch.Tensor, chunk: int) -> torch.Tensor:
    """diffusers' ``SanaMultiscaleLinearAttention`` (the DCAE's ReLU linear attention) over
    ``x`` chunk by chunk, with the key/value statistics summed over all chunks first."""
    batch, _, height, width = x.shape
    if height * width <= attn.attention_head_dim or width <= chunk:
        return attn(x)  # one chunk (or the quadratic branch, never hit by real tracks): as is
    halo = max((m.proj_in.kernel_size[1] // 2 for m in attn.to_qkv_multiscale), default=0)
    head = attn.attention_head_dim

    def qkv(start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        lo, hi = max(0, start - halo), min(width, stop + halo)
        piece = x[..., lo:hi].movedim(1, -1)
        h = torch.cat([attn.to_q(piece), attn.to_k(piece), attn.to_v(piece)], dim=3).movedim(-1, 1)
        h = torch.cat([h] + [block(h) for block in attn.to_qkv_multiscale], dim=1)
        h = h[..., start - lo : stop - lo].float()
        h = h.reshape(batch, -1, 3 * head, height * (stop - start))
        q, k, v = h.chunk(3, dim=2)
        return F.relu(q), F.relu(k), v

    # Pass 1: sum over every position of [v; 1] k^T (per head), as one big matmul would.
    stats = None
    for start, stop in _chunks(width, chunk):
        _, k, v = qkv(start, stop)
        part = torch.matmul(F.pad(v, (0, 0, 0, 1), mode="constant", value=1), k.transpose(-1, -2))
        stats = part if stats is None else stats + part
    assert stats is not None

    # Pass 2: apply the statistics to each chunk's queries; output projection, norm, residual.
    out = torch.empty_like(x)
    for start, stop in _chunks(width, chunk):
        q, _, _ = qkv(start, stop)
        h = torch.matmul(stats, q).float()
        h = (h[:, :, :-1] / (h[:, :, -1:] + attn.eps)).to(x.dtype)
        h = h.reshape(batch, -1, height, stop - start)
        h = attn.to_out(h.movedim(1, -1)).movedim(-1, 1)
        if attn.norm_type == "rms_norm":
            h = attn.norm_out(h.movedim(1, -1)).movedim(-1, 1)
        else:
            h = attn.norm_out(h)
        if attn.residual_connection:
            h = h + x[..., start:stop]
        out[..., start:stop] = h
    return out
