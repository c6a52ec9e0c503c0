"""The original single-file checkpoint -> the state dicts of our modules.

Stability ships one ``model.safetensors`` holding three parts under their training-code
prefixes: ``model.model.*`` (the DiT), ``pretransform.model.*`` (SAME-S) and
``conditioner.conditioners.*`` (the learned prompt padding and the ``seconds_total``
embedder), plus ``model_config.json``. We convert at *load*, in memory: it is renames and one
weight-norm fold, it costs well under a second next to reading 2.3 GB, and it keeps a single
copy on disk: the verified upstream file, not a second derived one to keep in sync.

Every key must be claimed by exactly one rule, and every target key filled: a checkpoint that
leaves anything over or short is refused (``ConversionError``), because a silently missing
tensor would still make sound, just wrong. The config values the modules are built on are
asserted, not assumed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    import torch

    from .same_s import SameSConfig

AE_PREFIX = "pretransform.model."
DIT_PREFIX = "model.model."
CONDITIONER_PREFIX = "conditioner.conditioners."


class ConversionError(ValueError):
    """The checkpoint or its config is not the layout this converter knows."""


# ----- config ---------------------------------------------------------------------------------
def _require(value: Any, expected: Any, what: str) -> None:
    if value != expected:
        raise ConversionError(f"model_config.json: {what} is {value!r}, this backend needs {expected!r}")


def autoencoder_config(model_config: Mapping[str, Any]) -> dict[str, Any]:
    try:
        block = model_config["model"]["pretransform"]["config"]
        block["encoder"]["config"], block["decoder"]["config"], block["pretransform"]["config"]
    except (KeyError, TypeError) as exc:
        raise ConversionError(f"model_config.json has no SAME autoencoder section ({exc})") from None
    return block


def same_s_config(model_config: Mapping[str, Any], state: Mapping[str, "torch.Tensor"]) -> "SameSConfig":
    """The SAME-S shapes, from the config where it says them and the tensors where it does not."""
    from .same_s import SameSConfig

    block = autoencoder_config(model_config)
    enc, dec = block["encoder"]["config"], block["decoder"]["config"]
    for side, cfg in (("encoder", enc), ("decoder", dec)):
        _require(cfg.get("chunk_midpoint_shift"), True, f"{side}.chunk_midpoint_shift")
        _require(cfg.get("chunk_size", 128), 32, f"{side}.chunk_size")
        _require(cfg.get("strides"), [16], f"{side}.strides")
        _require(cfg.get("sliding_window"), None, f"{side}.sliding_window")
        _require(cfg.get("differential", True), True, f"{side}.differential")
        _require(cfg.get("dyt", True), True, f"{side}.dyt")
        _require(cfg.get("variable_stride", False), True, f"{side}.variable_stride")
        _require(len(cfg.get("transformer_depths", [])), 1, f"{side}.transformer_depths (one block)")
        for flag in ("conformer", "layer_scale", "feat_scale", "cross_attn"):
            _require(bool(cfg.get(flag, False)), False, f"{side}.{flag}")
    _require(dec.get("conv_mapping", False), True, "decoder.conv_mapping")
    _require(enc.get("conv_mapping", False), False, "encoder.conv_mapping")
    _require(list(dec.get("sinusoidal_blocks", [0])), [0], "decoder.sinusoidal_blocks")
    _require(block.get("io_channels", 2), 2, "io_channels")
    bottleneck = block.get("bottleneck", {}).get("config", {})
    _require(bool(bottleneck.get("auto_scale")), True, "bottleneck.auto_scale")
    _require(int(bottleneck.get("noise_augment_dim", 0)), 0, "bottleneck.noise_augment_dim")

    enc_w = state[AE_PREFIX + "encoder.layers.0.mapping.weight_v"]
    dec_w = state[AE_PREFIX + "decoder.layers.3.mapping.weight_v"]
    ff_in = state[AE_PREFIX + "encoder.layers.0.transformers.0.ff.ff.0.proj.weight"]
    width = int(enc_w.shape[0])
    config = SameSConfig(
        patch_size=int(block["pretransform"]["config"]["patch_size"]),
        audio_channels=int(block["pretransform"]["config"].get("channels", 2)),
        width=width,
        latent_dim=int(block["latent_dim"]),
        stride=16,
        depth=int(enc["transformer_depths"][0]),
        head_dim=int(state[AE_PREFIX + "encoder.layers.0.transformers.0.self_attn.q_norm.gamma"].shape[0]),
        chunk_size=32,
        ff_mult=int(ff_in.shape[0]) // (2 * width),
        decoder_kernel=int(dec_w.shape[-1]),
        encoder_kernel=int(enc_w.shape[-1]),
    )
    _require(int(dec["transformer_depths"][0]), config.depth, "decoder.transformer_depths")
    _require(int(block["downsampling_ratio"]), config.samples_per_latent, "downsampling_ratio")
    _require(config.decoder_kernel, 3, "decoder mapping kernel")
    return config


# ----- state dicts ----------------------------------------------------------------------------
def fold_weight_norm(g: "torch.Tensor", v: "torch.Tensor") -> "torch.Tensor":
    """``weight = g * v / |v|``, the norm over all but the output dim (torch ``weight_norm(dim=0)``)."""
    norm = v.flatten(1).norm(dim=1).view(-1, *([1] * (v.dim() - 1)))
    return g * v / norm


_LAYER_RENAMES = (
    ("pre_norm.", "norm_attn."),
    ("ff_norm.", "norm_ff."),
    ("self_attn.", "attn."),
    ("ff.ff.0.proj.", "ff.proj_in."),
    ("ff.ff.2.", "ff.proj_out."),
)
_AE_BLOCKS = {"encoder.layers.0.": "encoder.", "decoder.layers.3.": "decoder."}
_AE_DIRECT = {
    "encoder.layers.2.weight": "encoder.to_latent.weight",
    "encoder.layers.2.bias": "encoder.to_latent.bias",
    "decoder.layers.1.weight": "decoder.from_latent.weight",
    "decoder.layers.1.bias": "decoder.from_latent.bias",
    "bottleneck.scaling_factor": "latent_scale",
    "bottleneck.bias": "latent_bias",
    "bottleneck.running_std": "running_std",
}
_TRANSFORMER_KEY = re.compile(r"transformers\.(\d+)\.(.+)")


def same_s_state(state: Mapping[str, "torch.Tensor"]) -> dict[str, "torch.Tensor"]:
    """Our ``SameS`` state dict from the ``pretransform.model.*`` tensors."""
    out: dict[str, torch.Tensor] = {}
    leftover: list[str] = []
    for key, tensor in state.items():
        if not key.startswith(AE_PREFIX):
            continue
        name = key[len(AE_PREFIX):]
        if name in _AE_DIRECT:
            out[_AE_DIRECT[name]] = tensor
            continue
        if name == "bottleneck.noise_scaling_factor" and tensor.numel() == 0:
            continue  # an empty parameter: no noise channels are appended
        block = next((b for b in _AE_BLOCKS if name.startswith(b)), None)
        if block is None:
            leftover.append(key)
            continue
        side, rest = _AE_BLOCKS[block], name[len(block):]
        if rest == "new_tokens":
            out[side + "new_tokens"] = tensor
        elif rest in ("mapping.weight_g", "mapping.weight_v"):
            pass  # folded below
        elif rest == "mapping.bias":
            out[side + "mapping.bias"] = tensor
        elif (match := _TRANSFORMER_KEY.fullmatch(rest)) is not None:
            index, tail = match.groups()
            if tail == "rope.inv_freq":
                continue  # a constant, recomputed by the module
            for old, new in _LAYER_RENAMES:
                if tail.startswith(old):
                    tail = new + tail[len(old):]
                    break
            else:
                leftover.append(key)
                continue
            out[f"{side}stack.layers.{index}.{tail}"] = tensor
        else:
            leftover.append(key)
    for block, side in _AE_BLOCKS.items():
        g, v = state.get(AE_PREFIX + block + "mapping.weight_g"), state.get(AE_PREFIX + block + "mapping.weight_v")
        if g is None or v is None:
            raise ConversionError(f"checkpoint lacks {AE_PREFIX}{block}mapping.weight_g/weight_v")
        out[side + "mapping.weight"] = fold_weight_norm(g, v)
    if leftover:
        raise ConversionError(f"unknown SAME-S tensors in the checkpoint: {', '.join(sorted(leftover)[:6])}")
    return out


def load_exactly(module: "torch.nn.Module", state: Mapping[str, "torch.Tensor"], what: str) -> None:
    """``load_state_dict`` that names what is missing, unexpected or misshapen."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    misshapen = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or misshapen:
        parts = [f"{label}: {', '.join(keys[:5])}" for label, keys in
                 (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshapen)) if keys]
        raise ConversionError(f"{what} does not fit the checkpoint ({'; '.join(parts)})")
    module.load_state_dict(dict(state), strict=True)


@dataclass(frozen=True)
class Checkpoint:
    """The original file's tensors, read once, and its config."""

    tensors: Mapping[str, "torch.Tensor"]
    config: Mapping[str, Any]

    def build_same_s(self) -> "torch.nn.Module":
        from .same_s import SameS

        module = SameS(same_s_config(self.config, self.tensors))
        load_exactly(module, same_s_state(self.tensors), "SAME-S")
        return module.eval()
