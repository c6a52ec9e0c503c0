"""The upstream ACE-Step 1.5 checkpoint layout -> diffusers ``transformer/`` + ``condition_encoder/``.

Upstream (``ACE-Step/Ace-Step1.5``, folder ``acestep-v15-turbo/``) ships one model:

    config.json          one config for DiT, condition encoder and audio tokenizer
    model.safetensors    decoder.*   the DiT          -> transformer/
                         encoder.*   condition encoder -> condition_encoder/
                         null_condition_emb            -> condition_encoder/ (base/SFT CFG)
                         tokenizer.*, detokenizer.*    5 Hz audio codes: text2music never reads them
    silence_latent.pt    encoded silence [1, C, T]     -> condition_encoder buffer, as [1, T, C]

The DiT's ``proj_in`` / ``proj_out`` are ``Sequential(lambda, conv, lambda)`` upstream, so
their weights sit at index 1 (``proj_in.1.weight``); diffusers names the convolutions
``proj_in_conv`` / ``proj_out_conv``. (The mapping was learned from diffusers'
``scripts/convert_ace_step_to_diffusers.py`` and upstream's loader, which transposes the
silence latent the same way; this is our own implementation.)

The inputs are untrusted files: the config is checked key by key, ``silence_latent.pt`` is
read with ``weights_only=True`` (no pickled code runs), and every converted tensor is
checked against the shapes the diffusers classes build from the converted config before
anything is written. Output is written to a temporary folder and renamed into place, with a
``conversion.json`` that records the sources' sizes and the outputs' sizes, mtimes and
sha256, so a half conversion never looks finished and a damaged output is found at load
(the record is then dropped, so the next setup converts again).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ...errors import LofiError, ModelLoadFailed
from ..ace_step.checkpoint import read_json_object, shape_problems

if TYPE_CHECKING:
    import torch

    from ...cancel import CancelToken

CONVERTER_VERSION = 1
RECORD_NAME = "conversion.json"
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
TRANSFORMER_KEYS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                    "num_key_value_heads", "head_dim", "in_channels", "audio_acoustic_hidden_dim", "patch_size",
                    "rope_theta", "attention_bias", "attention_dropout", "rms_norm_eps", "sliding_window",
                    "layer_types")
TRANSFORMER_OPTIONAL_KEYS = ("encoder_hidden_size", "is_turbo", "model_version")
ENCODER_KEYS = ("hidden_size", "intermediate_size", "text_hidden_dim", "timbre_hidden_dim",
                "num_lyric_encoder_hidden_layers", "num_timbre_encoder_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "head_dim", "rope_theta", "attention_bias", "attention_dropout",
                "rms_norm_eps", "sliding_window")
#: Source files, relative to the DiT folder.
SOURCES = ("config.json", "model.safetensors", "silence_latent.pt")

#: ``on_progress(done_bytes, total_bytes)`` while tensors are converted.
ProgressFn = Callable[[int, int], None]


class ConversionFailed(ModelLoadFailed):
    """The original checkpoint cannot be turned into diffusers components (a damaged or foreign file)."""


@dataclass(frozen=True)
class Converted:
    """A finished conversion: the two component folders."""

    root: Path

    @property
    def transformer(self) -> Path:
        return self.root / "transformer"

    @property
    def condition_encoder(self) -> Path:
        return self.root / "condition_encoder"


def split_key(key: str) -> tuple[str, str] | None:
    """Where one upstream tensor goes: ``(component, diffusers key)``, or None to skip it."""
    if key.startswith("decoder."):
        inner = key[len("decoder."):]
        for upstream, ours in (("proj_in.1.", "proj_in_conv."), ("proj_out.1.", "proj_out_conv.")):
            if inner.startswith(upstream):
                inner = ours + inner[len(upstream):]
        return "transformer", inner
    if key.startswith("encoder."):
        return "condition_encoder", key[len("encoder."):]
    if key == "null_condition_emb":
        return "condition_encoder", key
    return None


def component_configs(original: dict[str, Any], hint: str) -> dict[str, dict[str, Any]]:
    """The diffusers configs of both components, from the upstream ``config.json``."""
    missing = [k for k in dict.fromkeys(TRANSFORMER_KEYS + ENCODER_KEYS) if k not in original]
    if missing:
        raise ConversionFailed(f"the ACE-Step 1.5 config.json lacks {', '.join(missing)}", hint=hint)
    transformer = {k: original[k] for k in TRANSFORMER_KEYS}
    transformer.update({k: original[k] for k in TRANSFORMER_OPTIONAL_KEYS if k in original})
    transformer["is_turbo"] = bool(original.get("is_turbo", False))
    return {
        "transformer": {"_class_name": "AceStepTransformer1DModel", **transformer},
        "condition_encoder": {"_class_name": "AceStepConditionEncoder", **{k: original[k] for k in ENCODER_KEYS}},
    }


def _read_json(path: Path, hint: str) -> dict[str, Any]:
    return read_json_object(path, ConversionFailed, hint)


def _expected_shapes(configs: dict[str, dict[str, Any]], hint: str) -> dict[str, dict[str, tuple[int, ...]]]:
    """Every tensor the diffusers classes hold for these configs (built on the meta device: no memory)."""
    import torch
    from diffusers import AceStepConditionEncoder, AceStepTransformer1DModel

    classes = {"transformer": AceStepTransformer1DModel, "condition_encoder": AceStepConditionEncoder}
    shapes: dict[str, dict[str, tuple[int, ...]]] = {}
    for name, config in configs.items():
        kwargs = {k: v for k, v in config.items() if not k.startswith("_")}
        try:
            with torch.device("meta"):
                model = classes[name](**kwargs)
        except Exception as exc:  # a config value of the wrong type or size
            raise ConversionFailed(f"the ACE-Step 1.5 config does not build a {name}: {exc}", hint=hint) from exc
        shapes[name] = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    return shapes


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_stamps(dit_dir: Path) -> dict[str, int]:
    return {name: (dit_dir / name).stat().st_size for name in SOURCES}


def convert(dit_dir: Path, out_dir: Path, *, hint: str, on_progress: ProgressFn | None = None,
            cancel: "CancelToken | None" = None) -> Converted:
    """Convert ``dit_dir`` (an upstream DiT folder) into ``out_dir``; replaces an older conversion."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    configs = component_configs(_read_json(dit_dir / "config.json", hint), hint)
    expected = _expected_shapes(configs, hint)
    weights = dit_dir / "model.safetensors"
    states: dict[str, dict[str, torch.Tensor]] = {"transformer": {}, "condition_encoder": {}}
    try:
        done = 0
        with safe_open(str(weights), framework="pt", device="cpu") as f:
            total = sum(_slice_bytes(f.get_slice(k)) for k in f.keys() if split_key(k) is not None)
            for key in f.keys():
                if cancel is not None:
                    cancel.check()
                target = split_key(key)
                if target is None:
                    continue
                tensor = f.get_tensor(key)
                states[target[0]][target[1]] = tensor
                done += tensor.numel() * tensor.element_size()
                if on_progress is not None:
                    on_progress(done, total)
    except LofiError:  # cancelled, or already explained
        raise
    except Exception as exc:  # truncated / not a safetensors file
        raise ConversionFailed(f"cannot read {weights}: {exc}", hint=hint, path=str(weights)) from exc
    states["condition_encoder"]["silence_latent"] = _silence_latent(dit_dir / "silence_latent.pt", hint)

    for name, state in states.items():
        _check_shapes(name, state, expected[name], hint)

    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".converting")
    shutil.rmtree(tmp, ignore_errors=True)
    outputs: dict[str, dict[str, Any]] = {}
    for name, state in states.items():
        folder = tmp / name
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps(configs[name], indent=2), encoding="utf-8")
        save_file(state, str(folder / WEIGHTS_NAME), metadata={"format": "pt"})
        state.clear()  # hand the tensors back before the next component is written
        for path in (folder / "config.json", folder / WEIGHTS_NAME):
            outputs[str(path.relative_to(tmp))] = {"sha256": _sha256(path), **_stamp(path)}
    record = {"converter_version": CONVERTER_VERSION, "sources": source_stamps(dit_dir), "outputs": outputs}
    (tmp / RECORD_NAME).write_text(json.dumps(record, indent=2), encoding="utf-8")
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, out_dir)
    return Converted(out_dir)


_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def _slice_bytes(view: Any) -> int:
    numel = 1
    for n in view.get_shape():
        numel *= n
    return numel * _DTYPE_BYTES.get(view.get_dtype(), 4)


def _silence_latent(path: Path, hint: str) -> "torch.Tensor":
    import torch

    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)  # never unpickles code
    except Exception as exc:
        raise ConversionFailed(f"cannot read {path}: {exc}", hint=hint, path=str(path)) from exc
    if not isinstance(raw, torch.Tensor) or raw.dim() != 3 or raw.shape[0] != 1:
        shape = tuple(raw.shape) if isinstance(raw, torch.Tensor) else type(raw).__name__
        raise ConversionFailed(f"{path} is not a [1, channels, frames] tensor (got {shape})", hint=hint,
                               path=str(path))
    return raw.transpose(1, 2).contiguous()  # upstream stores [1, C, T]; the buffer is [1, T, C]


def _check_shapes(name: str, state: dict[str, Any], expected: dict[str, tuple[int, ...]], hint: str) -> None:
    problems = shape_problems(expected, state)
    if problems:
        raise ConversionFailed(f"the ACE-Step 1.5 {name} weights do not match its config: " + "; ".join(problems),
                               hint=hint, component=name)


def _stamp(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def read_record(out_dir: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((out_dir / RECORD_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def conversion_problem(dit_dir: Path, out_dir: Path, *, thorough: bool) -> str | None:
    """Why ``out_dir`` is not a good conversion of ``dit_dir`` (None: it is).

    Quick (status): the record, the sources' sizes, the outputs' presence and sizes.
    ``thorough`` (load): also re-hashes every output whose mtime changed since it was written.
    """
    record = read_record(out_dir)
    try:
        if record is None:
            return "no finished conversion"
        if record.get("converter_version") != CONVERTER_VERSION:
            return "it was made by another converter version"
        if record.get("sources") != source_stamps(dit_dir):
            return "the downloaded checkpoint changed since"
        outputs = dict(record["outputs"])
        for rel, want in outputs.items():
            path = out_dir / rel
            if not path.is_file():
                return f"{rel} is missing"
            have = _stamp(path)
            if have["size"] != want["size"]:
                return f"{rel} has {have['size']} bytes, {want['size']} when it was written"
            if thorough and have["mtime_ns"] != want["mtime_ns"] and _sha256(path) != want["sha256"]:
                return f"{rel} is damaged (checksum mismatch)"
    except (OSError, KeyError, TypeError, AttributeError) as exc:
        return f"unreadable conversion record ({exc})"
    return None


def forget(out_dir: Path) -> None:
    """Drop the record of a damaged conversion, so the next setup converts again."""
    try:
        (out_dir / RECORD_NAME).unlink()
    except FileNotFoundError:
        pass
