"""The official ACE-Step checkpoint folder: find it, read its configs, load only used weights.

Layout (as it comes from the hub, unchanged)::

    <dir>/ace_step_transformer/  config.json + diffusion_pytorch_model.safetensors (or sharded + index)
    <dir>/music_dcae_f8c8/       config.json + diffusion_pytorch_model.safetensors
    <dir>/music_vocoder/         config.json + diffusion_pytorch_model.safetensors
    <dir>/umt5-base/             config.json + model.safetensors + tokenizer files

Any problem reading these (missing folder, missing or truncated file, wrong shapes)
becomes MODEL_LOAD_FAILED with the hint to run setup again. Nothing here touches the
network.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from ...errors import ModelLoadFailed

if TYPE_CHECKING:
    import torch

    from .transformer import AceStepTransformer

log = logging.getLogger(__name__)

SUBDIRS = ("ace_step_transformer", "music_dcae_f8c8", "music_vocoder", "umt5-base")
SETUP_HINT = "Run :LofiSetup ace-step again."

#: Checkpoint tensors that inference never reads: the SSL projectors (training only)
#: and the cross-attention ``add_*`` projections, which the official forward ignores.
_UNUSED_PREFIXES = ("projectors.",)
_UNUSED_PARTS = (".cross_attn.add_q_proj.", ".cross_attn.add_k_proj.", ".cross_attn.add_v_proj.",
                 ".cross_attn.to_add_out.")


def is_unused_transformer_key(key: str) -> bool:
    return key.startswith(_UNUSED_PREFIXES) or any(part in key for part in _UNUSED_PARTS)


def missing_parts(root: Path) -> list[str]:
    """Sub-folders (and their config files) that ``root`` lacks."""
    missing = []
    for sub in SUBDIRS:
        if not (root / sub / "config.json").is_file():
            missing.append(f"{sub}/config.json")
    return missing


def is_checkpoint_dir(root: Path) -> bool:
    return not missing_parts(root)


HUB_REPO_FOLDER = "models--ACE-Step--ACE-Step-v1-3.5B"


def find_checkpoint(path: Path) -> Path:
    """``path`` itself when it has the four sub-folders; otherwise the newest complete
    snapshot of a hub cache inside it (e.g. the official app's ``~/.cache/ace-step/checkpoints``,
    which holds ``models--ACE-Step--ACE-Step-v1-3.5B/snapshots/<commit>/``). Falls back to
    ``path`` so the caller reports what is missing there."""
    if is_checkpoint_dir(path):
        return path
    snapshots = path / HUB_REPO_FOLDER / "snapshots"
    try:
        candidates = [d for d in snapshots.iterdir() if d.is_dir() and is_checkpoint_dir(d)]
    except OSError:
        return path
    return max(candidates, key=lambda d: d.stat().st_mtime) if candidates else path


def read_json_object(path: Path, error: Callable[..., Exception] = ModelLoadFailed,
                     hint: str = SETUP_HINT) -> dict[str, Any]:
    """A JSON object from an untrusted file; anything else is ``error`` naming the path."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise error(f"cannot read {path}: {exc}", hint=hint, path=str(path)) from exc
    if not isinstance(raw, dict):
        raise error(f"{path} is not a JSON object", hint=hint, path=str(path))
    return raw


def read_config(folder: Path) -> dict[str, Any]:
    return read_json_object(folder / "config.json")


def weight_files(folder: Path, stem: str = "diffusion_pytorch_model") -> list[Path]:
    """The safetensors file(s) of a diffusers/transformers folder: single or sharded."""
    single = folder / f"{stem}.safetensors"
    if single.is_file():
        return [single]
    index = folder / f"{stem}.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (OSError, ValueError, KeyError) as exc:
            raise ModelLoadFailed(f"cannot read {index}: {exc}", hint=SETUP_HINT, path=str(index)) from exc
        return [folder / name for name in sorted(set(weight_map.values()))]
    raise ModelLoadFailed(
        f"no {stem}.safetensors in {folder}", hint=SETUP_HINT, path=str(folder)
    )


def tensor_bytes(files: Iterable[Path], dtype_size: int | None = None,
                 skip: Callable[[str], bool] = lambda _key: False) -> int:
    """Bytes the tensors in ``files`` take once loaded (read from the headers only).

    ``dtype_size``: bytes per element after conversion (``None`` keeps the stored size).
    """
    from safetensors import safe_open

    sizes = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I8": 1, "U8": 1, "BOOL": 1}
    total = 0
    for path in files:
        with _open_safetensors(path, safe_open) as f:
            for key in f.keys():
                if skip(key):
                    continue
                view = f.get_slice(key)
                numel = 1
                for n in view.get_shape():
                    numel *= n
                total += numel * (dtype_size or sizes.get(view.get_dtype(), 4))
    return total


def load_state_dict(
    files: Iterable[Path],
    *,
    dtype: "torch.dtype",
    device: "str | torch.device" = "cpu",
    skip: Callable[[str], bool] = lambda _key: False,
) -> dict[str, "torch.Tensor"]:
    """Read the tensors of ``files``, cast floating ones to ``dtype`` and put them on ``device``
    one by one (so host memory never holds the whole model twice), skipping ``skip`` keys."""
    from safetensors import safe_open

    state: dict[str, torch.Tensor] = {}
    for path in files:
        with _open_safetensors(path, safe_open) as f:
            for key in f.keys():
                if skip(key):
                    continue
                try:
                    tensor = f.get_tensor(key)
                except Exception as exc:  # truncated data surfaces here
                    raise ModelLoadFailed(
                        f"cannot read tensor {key} from {path}: {exc}", hint=SETUP_HINT, path=str(path)
                    ) from exc
                state[key] = tensor.to(device=device, dtype=dtype if tensor.is_floating_point() else None)
    return state


class _open_safetensors:
    """``safe_open`` that turns a missing/corrupt file into MODEL_LOAD_FAILED."""

    def __init__(self, path: Path, safe_open: Any) -> None:
        self.path = path
        self._safe_open = safe_open
        self._handle: Any = None

    def __enter__(self) -> Any:
        try:
            self._handle = self._safe_open(str(self.path), framework="pt", device="cpu")
            return self._handle.__enter__()
        except Exception as exc:
            raise ModelLoadFailed(
                f"cannot open {self.path}: {exc}", hint=SETUP_HINT, path=str(self.path)
            ) from exc

    def __exit__(self, *exc: Any) -> None:
        if self._handle is not None:
            self._handle.__exit__(*exc)


def transformer_config(root: Path) -> "Any":
    from .transformer import TransformerConfig

    return TransformerConfig.from_json(read_config(root / "ace_step_transformer"))


def load_transformer(root: Path, *, device: "str | torch.device", dtype: "torch.dtype") -> "AceStepTransformer":
    """Build the transformer without allocating, then fill it with the checkpoint's used weights."""
    import torch

    from .transformer import AceStepTransformer

    folder = root / "ace_step_transformer"
    config = transformer_config(root)
    with torch.device("meta"):
        model = AceStepTransformer(config)
    state = load_state_dict(weight_files(folder), dtype=dtype, device=device, skip=is_unused_transformer_key)
    load_exact(model, state, f"transformer ({folder})")
    return model.to(device).eval().requires_grad_(False)


def shape_problems(expected: dict[str, tuple[int, ...]], state: dict[str, Any]) -> list[str]:
    """What keeps ``state`` from filling a model whose parameters have ``expected`` shapes
    (missing, unknown and wrongly shaped tensors, one example each); empty when it fits."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(state[k].shape) != tuple(expected[k]))
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensors (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unknown tensors (e.g. {unexpected[0]})")
    if wrong:
        k = wrong[0]
        problems.append(f"{len(wrong)} tensors with the wrong shape (e.g. {k}: {tuple(state[k].shape)}, "
                        f"config says {tuple(expected[k])})")
    return problems


def load_exact(model: "torch.nn.Module", state: dict[str, "torch.Tensor"], what: str) -> None:
    """Load ``state`` into a meta-device ``model``: every parameter present, with its shape."""
    details = shape_problems({k: tuple(v.shape) for k, v in model.state_dict().items()}, state)
    if details:
        raise ModelLoadFailed(f"the {what} weights do not match its config.json: " + "; ".join(details),
                              hint=SETUP_HINT, what=what)
    model.load_state_dict(state, strict=True, assign=True)