"""Where each ACE-Step 1.5 component's files are, what they weigh, and loading them offline.

Diffusers-layout repos hold every component as a sub-folder of the snapshot. The original
layout holds the VAE and the Qwen3 text encoder (with its tokenizer) as they are, and the
DiT + condition encoder as one upstream file that setup converted (``convert.py``) into a
folder beside the snapshot. Either way the pipeline is assembled from plain
``from_pretrained`` loads of local folders (``local_files_only``: loading never reaches the
network).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import LofiError, ModelLoadFailed
from ...models.manifests import ACE_STEP_15_TEXT_ENCODER_DIR
from ..ace_step.checkpoint import tensor_bytes, weight_files

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

COMPONENTS = ("text_encoder", "condition_encoder", "transformer", "vae")


@dataclass(frozen=True)
class ComponentPaths:
    transformer: Path
    condition_encoder: Path
    vae: Path
    text_encoder: Path
    tokenizer: Path
    scheduler: Path | None  # diffusers layout only; the original layout uses the pipeline's standard one

    @classmethod
    def diffusers(cls, snapshot: Path) -> "ComponentPaths":
        return cls(snapshot / "transformer", snapshot / "condition_encoder", snapshot / "vae",
                   snapshot / "text_encoder", snapshot / "tokenizer", snapshot / "scheduler")

    @classmethod
    def original(cls, snapshot: Path, converted: Path) -> "ComponentPaths":
        text = snapshot / ACE_STEP_15_TEXT_ENCODER_DIR
        return cls(converted / "transformer", converted / "condition_encoder", snapshot / "vae", text, text, None)

    def folder(self, component: str) -> Path:
        return getattr(self, component)


def weight_bytes(paths: ComponentPaths, hint: str) -> dict[str, int]:
    """Bytes of each component's weights once loaded in float32 (from the safetensors headers)."""
    stems = {"text_encoder": "model"}
    try:
        return {c: tensor_bytes(weight_files(paths.folder(c), stems.get(c, "diffusion_pytorch_model")), 4)
                for c in COMPONENTS}
    except ModelLoadFailed as exc:  # v1's helpers carry v1's setup hint: say ours
        raise ModelLoadFailed(exc.message, hint=hint, **exc.facts) from None


def load_pipeline(paths: ComponentPaths, *, dtype: "torch.dtype", hint: str, pipeline_class: Any = None) -> Any:
    """The diffusers pipeline from local folders, on the CPU in ``dtype`` (the caller places it).

    ``pipeline_class``: an ``AceStepPipeline`` subclass (low-VRAM mode pins its execution device);
    by default the one that can extend a source (``extend.py``).
    """
    from diffusers import (
        AceStepConditionEncoder,
        AceStepTransformer1DModel,
        AutoencoderOobleck,
        FlowMatchEulerDiscreteScheduler,
    )
    from transformers import AutoModel, AutoTokenizer

    def load(component: str, loader: Any, folder: Path, **kwargs: Any) -> Any:
        try:
            return loader(str(folder), local_files_only=True, **kwargs)
        except LofiError:
            raise
        except MemoryError:
            raise
        except Exception as exc:  # missing, truncated or foreign files surface as assorted library errors
            raise ModelLoadFailed(f"ACE-Step 1.5 {component} could not be loaded from {folder}: "
                                  f"{type(exc).__name__}: {exc}", hint=hint, component=component) from exc

    tokenizer = load("tokenizer", AutoTokenizer.from_pretrained, paths.tokenizer)
    text_encoder = load("text_encoder", AutoModel.from_pretrained, paths.text_encoder, dtype=dtype)
    condition_encoder = load("condition_encoder", AceStepConditionEncoder.from_pretrained,
                             paths.condition_encoder, torch_dtype=dtype)
    transformer = load("transformer", AceStepTransformer1DModel.from_pretrained, paths.transformer,
                       torch_dtype=dtype)
    vae = load("vae", AutoencoderOobleck.from_pretrained, paths.vae, torch_dtype=dtype)
    if paths.scheduler is not None:
        scheduler = load("scheduler", FlowMatchEulerDiscreteScheduler.from_pretrained, paths.scheduler)
    else:  # what the official diffusers conversion ships: the pipeline computes its own sigmas
        scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1, shift=1.0)
    from .extend import extending_pipeline_class

    pipe = (pipeline_class or extending_pipeline_class())(
        vae=vae, text_encoder=text_encoder.eval(), tokenizer=tokenizer, transformer=transformer.eval(),
        condition_encoder=condition_encoder.eval(), scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)  # stderr is our log; progress goes over the protocol
    return pipe
