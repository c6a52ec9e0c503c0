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

    def check_complete(self) -> None:
        extra = unclaimed_keys(self.tensors)
        if extra:
            raise ConversionError(f"unknown tensors in the checkpoint: {', '.join(extra[:6])}")

    def build_dit(self) -> "torch.nn.Module":
        from diffusers.models.transformers.transformer_stable_audio3 import (
            StableAudio3DiTModel,
            StableAudio3RMSNorm,
        )

        module = StableAudio3DiTModel(**dit_config(self.config, self.tensors))
        eps = block_norm_eps(self.config)
        for block in module.transformer_blocks:
            for norm in (block.pre_norm, block.cross_attend_norm, block.ff_norm):
                if isinstance(norm, StableAudio3RMSNorm):
                    norm.eps = eps  # the checkpoint was trained with this eps
        load_exactly(module, dit_state(self.tensors), "the DiT")
        return module.eval()

    def build_duration_embedder(self) -> "torch.nn.Module":
        from diffusers.pipelines.stable_audio_3.modeling_stable_audio_3 import StableAudio3DurationEmbedder

        weight = duration_state(self.tensors)["linear.weight"]
        module = StableAudio3DurationEmbedder(output_dim=int(weight.shape[0]), fourier_dim=int(weight.shape[1]),
                                              **seconds_config(self.config))
        own = module.state_dict()
        load_exactly(module, {**duration_state(self.tensors), "freqs": own["freqs"]}, "the duration embedder")
        return module.eval()

    def build_same_s(self) -> "torch.nn.Module":
        from .same_s import SameS

        module = SameS(same_s_config(self.config, self.tensors))
        load_exactly(module, same_s_state(self.tensors), "SAME-S")
        return module.eval()


# ----- the DiT and the duration embedder --------------------------------------------------------
def diffusion_config(model_config: Mapping[str, Any]) -> dict[str, Any]:
    try:
        block = model_config["model"]["diffusion"]
        block["config"]
    except (KeyError, TypeError) as exc:
        raise ConversionError(f"model_config.json has no diffusion section ({exc})") from None
    return block


def dit_config(model_config: Mapping[str, Any], state: Mapping[str, "torch.Tensor"]) -> dict[str, Any]:
    """Keyword arguments for diffusers' ``StableAudio3DiTModel``, checked against what it implements."""
    block = diffusion_config(model_config)
    cfg = block["config"]
    _require(block.get("diffusion_objective"), "rf_denoiser", "diffusion.diffusion_objective")
    _require(cfg.get("global_cond_type"), "adaLN", "diffusion.config.global_cond_type")
    _require(cfg.get("timestep_cond_type", "global"), "global", "diffusion.config.timestep_cond_type")
    _require(cfg.get("timestep_features_type"), "expo", "diffusion.config.timestep_features_type")
    _require(bool(cfg.get("timestep_features_logsnr", False)), False, "diffusion.config.timestep_features_logsnr")
    _require(int(cfg.get("patch_size", 1)), 1, "diffusion.config.patch_size")
    _require(cfg.get("norm_type"), "rms_norm", "diffusion.config.norm_type")
    _require(int(cfg.get("input_concat_dim", 0)), 0, "diffusion.config.input_concat_dim")
    _require(int(cfg.get("prepend_cond_dim", 0)), 0, "diffusion.config.prepend_cond_dim")
    _require(bool(cfg.get("cross_attn_rotary_pos_emb", False)), False, "diffusion.config.cross_attn_rotary_pos_emb")
    _require(list(block.get("local_add_cond_ids", [])), ["inpaint_mask", "inpaint_masked_input"],
             "diffusion.local_add_cond_ids")
    _require(list(block.get("global_cond_ids", [])), ["seconds_total"], "diffusion.global_cond_ids")
    _require(list(block.get("cross_attention_cond_ids", [])), ["prompt", "seconds_total"],
             "diffusion.cross_attention_cond_ids")
    attn = cfg.get("attn_kwargs", {})
    _require(attn.get("qk_norm"), "rms", "diffusion.config.attn_kwargs.qk_norm")
    _require(bool(attn.get("differential", False)), False, "diffusion.config.attn_kwargs.differential (Small)")
    embed_dim, heads = int(cfg["embed_dim"]), int(cfg["num_heads"])
    if max((embed_dim // heads) // 2, 32) != (embed_dim // heads) // 2:
        raise ConversionError("the DiT heads are narrower than 64: its RoPE width differs from diffusers'")
    qkv = state[DIT_PREFIX + "transformer.layers.0.self_attn.to_qkv.weight"]
    _require(int(qkv.shape[0]), 3 * embed_dim, "DiT self-attention width (3 x embed_dim: not differential)")
    return {
        "io_channels": int(cfg["io_channels"]),
        "patch_size": 1,
        "embed_dim": embed_dim,
        "depth": int(cfg["depth"]),
        "num_heads": heads,
        "cond_token_dim": int(cfg["cond_token_dim"]),
        "global_cond_dim": int(cfg["global_cond_dim"]),
        "local_add_cond_dim": int(cfg["local_add_cond_dim"]),
        "timestep_features_dim": int(cfg.get("timestep_features_dim", 256)),
        "ff_mult": float(cfg.get("ff_kwargs", {}).get("mult", 4)),
        "num_memory_tokens": int(cfg.get("num_memory_tokens", 0)),
        "use_differential_attention": False,
    }


def block_norm_eps(model_config: Mapping[str, Any]) -> float:
    """The DiT's block RMSNorm eps (the training code's default is 1e-5; diffusers builds 1e-6)."""
    cfg = diffusion_config(model_config)["config"]
    return float(cfg.get("norm_kwargs", {}).get("eps", 1e-5))


def seconds_config(model_config: Mapping[str, Any]) -> dict[str, float]:
    try:
        entries = model_config["model"]["conditioning"]["configs"]
        entry = next(c for c in entries if c.get("id") == "seconds_total")
    except (KeyError, TypeError, StopIteration):
        raise ConversionError("model_config.json has no seconds_total conditioner") from None
    cfg = entry.get("config", {})
    _require(entry.get("type"), "number", "seconds_total.type")
    _require(cfg.get("fourier_features_type"), "expo", "seconds_total.fourier_features_type")
    return {"min_val": float(cfg.get("min_val", 0.0)), "max_val": float(cfg.get("max_val", 1.0))}


_DIT_RENAMES = (
    ("transformer.project_in.", "proj_in."),
    ("transformer.project_out.", "proj_out."),
    ("transformer.memory_tokens", "memory_tokens"),
    ("transformer.rotary_pos_emb.", "rotary_pos_emb."),
    ("transformer.global_cond_embedder.", "global_cond_embedder."),
)
_DIT_LAYER = re.compile(r"transformer\.layers\.(\d+)\.(.+)")
_DIT_TOP = ("to_timestep_embed.", "to_cond_embed.", "to_global_embed.", "preprocess_conv.", "postprocess_conv.")
_PADDING_KEY = CONDITIONER_PREFIX + "prompt.padding_embedding"
_SECONDS_PREFIX = CONDITIONER_PREFIX + "seconds_total.embedder.embedding.1."


def dit_state(state: Mapping[str, "torch.Tensor"]) -> dict[str, "torch.Tensor"]:
    """diffusers' ``StableAudio3DiTModel`` state dict from ``model.model.*`` and the prompt padding."""
    out: dict[str, torch.Tensor] = {}
    leftover: list[str] = []
    for key, tensor in state.items():
        if not key.startswith(DIT_PREFIX):
            continue
        name = key[len(DIT_PREFIX):]
        renamed = next((new + name[len(old):] for old, new in _DIT_RENAMES if name.startswith(old)), None)
        if renamed is None and (match := _DIT_LAYER.fullmatch(name)) is not None:
            index, tail = match.groups()
            tail = tail.replace("ff.ff.0.proj.", "ff.proj_in.").replace("ff.ff.2.", "ff.proj_out.")
            renamed = f"transformer_blocks.{index}.{tail}"
        if renamed is None and name.startswith(_DIT_TOP):
            renamed = name
        if renamed is None:
            leftover.append(key)
        else:
            out[renamed] = tensor
    if leftover:
        raise ConversionError(f"unknown DiT tensors in the checkpoint: {', '.join(sorted(leftover)[:6])}")
    if _PADDING_KEY not in state:
        raise ConversionError(f"checkpoint lacks {_PADDING_KEY}")
    out["prompt_padding_embedding"] = state[_PADDING_KEY]
    return out


def duration_state(state: Mapping[str, "torch.Tensor"]) -> dict[str, "torch.Tensor"]:
    """diffusers' ``StableAudio3DurationEmbedder`` (its ``freqs`` buffer is recomputed)."""
    try:
        return {"linear.weight": state[_SECONDS_PREFIX + "weight"], "linear.bias": state[_SECONDS_PREFIX + "bias"]}
    except KeyError as exc:
        raise ConversionError(f"checkpoint lacks {exc.args[0]}") from None


def unclaimed_keys(state: Mapping[str, "torch.Tensor"]) -> list[str]:
    """Tensors no part of the converter reads: a layout we do not know."""
    claimed_conditioner = {_PADDING_KEY, _SECONDS_PREFIX + "weight", _SECONDS_PREFIX + "bias"}
    return sorted(k for k in state if not k.startswith((AE_PREFIX, DIT_PREFIX)) and k not in claimed_conditioner)
