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

The inputs are untrusted files. Each is opened as a regular file (a FIFO, device or a
symlink to one is refused; the check is on the opened descriptor) and size-capped before a
byte is read. The config is checked key by key and every value range-checked before any
model is built (``num_hidden_layers: 1000000`` or ``rope_theta: NaN`` never get that far);
every tensor's shape in ``model.safetensors`` is compared with what the config builds before
its data is read; ``silence_latent.pt`` is size-checked against the shape the config implies
before it is loaded, with ``weights_only=True`` (no pickled code runs). Any failure is
``ConversionFailed``. Output is written into a fresh private folder (``mkdir`` of a random
name: a planted symlink is never followed) and renamed into place, with a
``conversion.json`` that records the sources' sizes and the outputs' sizes, mtimes and
sha256, so a half conversion never looks finished and a damaged output is found at load
(the record is then dropped, so the next setup converts again).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ...errors import LofiError, ModelLoadFailed, clip
from ...files import UnsafeFile, descriptor_path, new_private_dir, open_regular, read_regular_file, replace_dir, \
    write_new_file
from ..ace_step.checkpoint import shape_problems

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
MAX_CONFIG_BYTES = 1 << 20
MAX_WEIGHTS_BYTES = 64 << 30  # the XL checkpoints are ~10 GB
MAX_SILENCE_BYTES = 64 << 20  # encoded silence [1, 64, 15000] float32 is ~4 MB
#: (lowest, highest) for each integer the model is built from: far beyond every released
#: variant, small enough that building it on the meta device takes a moment.
INT_RANGES = {"hidden_size": (1, 16384), "intermediate_size": (1, 65536), "num_hidden_layers": (1, 256),
              "num_attention_heads": (1, 512), "num_key_value_heads": (1, 512), "head_dim": (1, 1024),
              "in_channels": (1, 8192), "audio_acoustic_hidden_dim": (1, 8192), "patch_size": (1, 64),
              "text_hidden_dim": (1, 16384), "timbre_hidden_dim": (1, 8192),
              "num_lyric_encoder_hidden_layers": (1, 256), "num_timbre_encoder_hidden_layers": (1, 256),
              "encoder_hidden_size": (1, 16384)}
MAX_PARAMETERS = 50_000_000_000  # a config that promises more is not a checkpoint we can hold

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
    problem = config_problem(original)
    if problem is not None:
        raise ConversionFailed(f"the ACE-Step 1.5 config.json is not usable: {problem}", hint=hint, field=problem.split()[0])
    transformer = {k: original[k] for k in TRANSFORMER_KEYS}
    transformer.update({k: original[k] for k in TRANSFORMER_OPTIONAL_KEYS if k in original})
    transformer["is_turbo"] = bool(original.get("is_turbo", False))
    return {
        "transformer": {"_class_name": "AceStepTransformer1DModel", **transformer},
        "condition_encoder": {"_class_name": "AceStepConditionEncoder", **{k: original[k] for k in ENCODER_KEYS}},
    }


def config_problem(config: dict[str, Any]) -> str | None:
    """Why these config values cannot be a real ACE-Step 1.5 (None: they can), before any is used."""
    for key, (low, high) in INT_RANGES.items():
        if key not in config:
            continue
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            return f"{key} is {clip(repr(value), 40)}, not a whole number in {low}..{high}"
    for key, low, high in (("rope_theta", 1.0, 1e12), ("rms_norm_eps", 1e-12, 0.1), ("attention_dropout", 0.0, 1.0)):
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not low <= value <= high:
            return f"{key} is {clip(repr(value), 40)}, not a finite number in {low:g}..{high:g}"
    window = config.get("sliding_window")
    if window is not None and (isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= 1 << 20):
        return f"sliding_window is {clip(repr(window), 40)}, not null or a whole number in 1..{1 << 20}"
    for key in ("attention_bias", "is_turbo"):
        if key in config and not isinstance(config[key], bool):
            return f"{key} is {clip(repr(config[key]), 40)}, not true or false"
    if "model_version" in config and not (isinstance(config["model_version"], str) and len(config["model_version"]) <= 64):
        return "model_version is not a short string"
    layers = config.get("layer_types")
    if layers is not None and (not isinstance(layers, list) or len(layers) != config["num_hidden_layers"]
                               or not all(isinstance(t, str) and len(t) <= 64 for t in layers)):
        return "layer_types is not a list of one short name per hidden layer"
    if config["num_attention_heads"] % config["num_key_value_heads"]:
        return "num_attention_heads is not a multiple of num_key_value_heads"
    hidden, inter = config["hidden_size"], config["intermediate_size"]
    layer_count = config["num_hidden_layers"] + config["num_lyric_encoder_hidden_layers"] \
        + config["num_timbre_encoder_hidden_layers"]
    per_layer = 3 * hidden * inter + 4 * hidden * config["num_attention_heads"] * config["head_dim"]
    if layer_count * per_layer > MAX_PARAMETERS:
        return f"num_hidden_layers and the sizes promise over {MAX_PARAMETERS:.0e} parameters"
    return None


def _read_json(path: Path, hint: str) -> dict[str, Any]:
    try:
        raw = json.loads(read_regular_file(path, MAX_CONFIG_BYTES).decode("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # UnsafeFile is a ValueError
        raise ConversionFailed(_unreadable(path, exc), hint=hint, path=str(path)) from exc
    if not isinstance(raw, dict):
        raise ConversionFailed(f"{path} is not a JSON object", hint=hint, path=str(path))
    return raw


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
            raise ConversionFailed(f"the ACE-Step 1.5 config does not build a {name}: {clip(str(exc), 300)}",
                                   hint=hint) from exc
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
    fd = _open_source(weights, MAX_WEIGHTS_BYTES, hint)
    try:
        done = 0
        with safe_open(descriptor_path(fd, weights), framework="pt", device="cpu") as f:
            _check_header(f, expected, hint)  # every shape, before a byte of tensor data is read
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
        raise ConversionFailed(f"cannot read {weights}: {clip(str(exc), 300)}", hint=hint, path=str(weights)) from exc
    finally:
        os.close(fd)
    silence_shape = expected["condition_encoder"].get("silence_latent")
    states["condition_encoder"]["silence_latent"] = _silence_latent(dit_dir / "silence_latent.pt", silence_shape, hint)

    for name, state in states.items():
        _check_shapes(name, state, expected[name], hint)
    try:
        return _write(states, configs, dit_dir, Path(out_dir), save_file)
    except OSError as exc:  # a full disk, a file where the folder should be, a read-only cache
        raise ConversionFailed(f"cannot write the converted model to {out_dir}: {exc.strerror or exc}",
                               hint="Check free space and permissions of the cache dir, then " + hint[0].lower()
                               + hint[1:], path=str(out_dir)) from exc


def _write(states: dict[str, dict[str, Any]], configs: dict[str, dict[str, Any]], dit_dir: Path, out_dir: Path,
           save_file: Callable[..., None]) -> Converted:
    """Both components and the record into a fresh private folder, renamed to ``out_dir``."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = new_private_dir(out_dir.parent, f".{out_dir.name}.converting.")
    try:
        outputs: dict[str, dict[str, Any]] = {}
        for name, state in states.items():
            folder = tmp / name
            os.mkdir(folder, 0o700)
            write_new_file(folder / "config.json", json.dumps(configs[name], indent=2).encode("utf-8"))
            save_file(state, str(folder / WEIGHTS_NAME), metadata={"format": "pt"})  # inside our own new folder
            state.clear()  # hand the tensors back before the next component is written
            for path in (folder / "config.json", folder / WEIGHTS_NAME):
                outputs[str(path.relative_to(tmp))] = {"sha256": _sha256(path), **_stamp(path)}
        record = {"converter_version": CONVERTER_VERSION, "sources": source_stamps(dit_dir), "outputs": outputs}
        write_new_file(tmp / RECORD_NAME, json.dumps(record, indent=2).encode("utf-8"))
        replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Converted(out_dir)


def _open_source(path: Path, limit: int, hint: str) -> int:
    try:
        return open_regular(path, limit)
    except (OSError, UnsafeFile) as exc:
        raise ConversionFailed(_unreadable(path, exc), hint=hint, path=str(path)) from exc


def _unreadable(path: Path, exc: BaseException) -> str:
    """The message for a source that cannot be read (an UnsafeFile already names its path)."""
    return clip(str(exc), 300) if isinstance(exc, UnsafeFile) else f"cannot read {path}: {clip(str(exc), 300)}"


class _Shape:
    def __init__(self, shape: Any) -> None:
        self.shape = tuple(shape)


def _check_header(f: Any, expected: dict[str, dict[str, tuple[int, ...]]], hint: str) -> None:
    """The tensors' shapes as the file's header declares them, against the config's."""
    declared: dict[str, dict[str, _Shape]] = {"transformer": {}, "condition_encoder": {}}
    for key in f.keys():
        target = split_key(key)
        if target is not None:
            declared[target[0]][target[1]] = _Shape(f.get_slice(key).get_shape())
    for name, shapes in declared.items():
        _check_shapes(name, shapes, {k: v for k, v in expected[name].items() if k != "silence_latent"}, hint)


_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def _slice_bytes(view: Any) -> int:
    numel = 1
    for n in view.get_shape():
        numel *= n
    return numel * _DTYPE_BYTES.get(view.get_dtype(), 4)


def _silence_latent(path: Path, buffer_shape: tuple[int, ...] | None, hint: str) -> "torch.Tensor":
    import io

    import torch

    # The config fixes the buffer's shape: a file far bigger than its float32 data is refused unread.
    limit = MAX_SILENCE_BYTES if buffer_shape is None else min(MAX_SILENCE_BYTES, 8 * math.prod(buffer_shape) + (1 << 16))
    try:
        data = read_regular_file(path, limit)
    except (OSError, ValueError) as exc:
        raise ConversionFailed(_unreadable(path, exc), hint=hint, path=str(path)) from exc
    try:
        raw = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)  # never unpickles code
    except Exception as exc:
        raise ConversionFailed(_unreadable(path, exc), hint=hint, path=str(path)) from exc
    if not isinstance(raw, torch.Tensor) or raw.dim() != 3 or raw.shape[0] != 1:
        shape = tuple(raw.shape) if isinstance(raw, torch.Tensor) else type(raw).__name__
        raise ConversionFailed(f"{path} is not a [1, channels, frames] tensor (got {shape})", hint=hint,
                               path=str(path))
    if not raw.is_floating_point() or not bool(torch.isfinite(raw).all()):
        raise ConversionFailed(f"{path} holds {raw.dtype} values that are not all finite numbers", hint=hint,
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
