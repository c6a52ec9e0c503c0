"""The ``ace_step`` backend: long-form (5-240 s) instrumental tracks with ACE-Step v1 3.5B.

Where the weights are: the model store's snapshot of ``ACE-Step/ACE-Step-v1-3.5B`` (what
``:LofiSetup ace-step`` downloads), or a folder named by ``LOFI_ACESTEP_DIR`` or the config
key ``ace_step_dir``: one with the four official sub-folders (the tests point it at the tiny
golden-fixture checkpoint), or a hub cache holding such a snapshot (the official app's
``~/.cache/ace-step/checkpoints``), so an existing download can be reused as it is. Importing this module is cheap: torch and the model code are
imported in ``load``.

Play while decoding: ``request.windows``, when set, gets the 48 kHz track in time order as the
decode finishes it (docs/ace_step.md, "Play while decoding"); it never changes the audio.

Device rules: CUDA in bfloat16 (the official default; the math the official code upcasts
runs in float32 there too), MPS and CPU in float32. Low-VRAM mode (chosen automatically
when the whole model does not fit, or by the ``low_vram`` config) keeps every component on
the CPU and moves each to the GPU only while it runs.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...device import DevicePlan, ResolvedDevice, check_memory, empty_cache, resolve
from ...errors import LofiError, ModelInferenceFailed, ModelLoadFailed
from ...models.manifests import ACE_STEP
from ...cancel import CancelToken
from ..base import Backend, Capabilities, GeneratedAudio, GenerationRequest, ParamSpec, Progress
from ..phase_costs import PhaseClock, PhaseCosts
from .checkpoint import SETUP_HINT, SUBDIRS, find_checkpoint, missing_parts

if TYPE_CHECKING:
    from ...models.store import ModelStore
    from ...settings import Settings
    from .pipeline import AceStepPipeline

log = logging.getLogger(__name__)

ENV_DIR = "LOFI_ACESTEP_DIR"
PREFS_DIR_KEY = "ace_step_dir"
PREFS_COMPILE_KEY = "ace_step_compile"  # true: torch.compile the transformer (CUDA only by default)
MIN_DURATION_SEC = 5.0
MAX_DURATION_SEC = 240.0
SAMPLE_RATE = 48_000
RETRY_HINT = "Retry with another seed."

PARAMETERS = (
    ParamSpec("inference_steps", "int", 27, 1, 200,
              description="Denoising steps: 27 is the official speed setting, 60 its quality default."),
    ParamSpec("scheduler", "choice", "euler", choices=("euler", "heun", "pingpong"),
              description="Sampler: euler (default), heun (2 model calls per step), pingpong (stochastic)."),
    ParamSpec("guidance_scale", "float", 15.0, 0.0, 200.0,
              description="How strongly to follow the prompt (0 or 1 = no guidance)."),
    ParamSpec("cfg_type", "choice", "apg", choices=("apg", "cfg"),
              description="Guidance method: adaptive projected guidance (apg) or classic CFG."),
    ParamSpec("omega_scale", "float", 10.0, -100.0, 100.0,
              description="Granularity: rescales each euler/heun update around its mean."),
    ParamSpec("guidance_interval", "float", 0.5, 0.0, 1.0,
              description="Middle fraction of the steps that are guided."),
    ParamSpec("guidance_interval_decay", "float", 0.0, 0.0, 1.0,
              description="Lower the guidance towards min_guidance_scale across the interval."),
    ParamSpec("min_guidance_scale", "float", 3.0, 0.0, 200.0,
              description="Guidance at the end of the interval when decay is on."),
    ParamSpec("use_erg_tag", "bool", True, description="Entropy-rectifying guidance on the prompt."),
    ParamSpec("use_erg_lyric", "bool", True, description="Entropy-rectifying guidance on the lyric tag."),
    ParamSpec("use_erg_diffusion", "bool", True, description="Entropy-rectifying guidance in the transformer."),
    ParamSpec("instrumental_tag", "choice", "[instrumental]", choices=("[instrumental]", "[inst]", ""),
              description="Lyrics used to ask for no vocals ('' is the official empty-lyrics path)."),
)


@dataclass
class CostModel(PhaseCosts):
    """ACE-Step v1's phases for ``(frames, calls, guided)``.

    CPU: core-seconds of the full-size model in float32 on one AVX2 core, measured with
    ``bench/bench_ace_step_ab.py`` (docs/benchmarks.md). MPS and CUDA: rough guesses.
    """

    # text = a; an unguided transformer call = b + c * frames (a guided one is a batch of two,
    # GUIDED_COST times as long); decode = d * frames
    _BASE = {
        "cpu": (1.0, 0.3, 0.072, 0.55),
        "mps": (0.3, 0.2, 0.002, 0.02),
        "cuda": (0.1, 0.03, 0.0002, 0.002),
    }
    GUIDED_COST = 1.8  # 1.9x at one thread, 1.7x at two

    def work(self, frames: int, calls: int, guided: int = 0) -> dict[str, float]:
        text, call_fixed, call_per_frame, decode_per_frame = self._BASE.get(self.device, self._BASE["cpu"])
        call_units = calls + guided * (self.GUIDED_COST - 1.0)
        return {"text": text, "diffusion": call_units * (call_fixed + call_per_frame * frames),
                "decode": decode_per_frame * frames}


class AceStepBackend(Backend):
    name = "ace_step"
    requires = ("torch", "transformers", "diffusers")

    def __init__(self, settings: "Settings", store: "ModelStore") -> None:
        self._settings = settings
        self._store = store
        self.manifest = ACE_STEP
        self._pipeline: AceStepPipeline | None = None
        self._target: ResolvedDevice | None = None
        self._costs: CostModel | None = None
        override = self._override_dir()
        self.model_version = (
            f"local:{override.resolve()}" if override else f"{self.manifest.repo_id}@{self.manifest.revision}"
        )

    # -- what the daemon asks before loading -------------------------------------------

    def capabilities(self) -> Capabilities:
        return Capabilities(
            min_duration_sec=MIN_DURATION_SEC,
            max_duration_sec=MAX_DURATION_SEC,
            sample_rate=SAMPLE_RATE,
            parameters=PARAMETERS,
            description="ACE-Step v1 3.5B: long-form instrumental tracks up to 4 minutes",
            # Above ~48 s the decode runs in windows, in time order (decode.py); shorter
            # tracks decode in one shot and come as one window at the end.
            decodes_in_windows=True,
        )

    def _override_dir(self) -> Path | None:
        """The user's own checkpoint folder (or a hub cache holding one), if configured."""
        raw = os.environ.get(ENV_DIR) or self._settings.prefs.extra.get(PREFS_DIR_KEY)
        return find_checkpoint(Path(str(raw)).expanduser()) if raw else None

    @property
    def checkpoint_dir(self) -> Path:
        return self._override_dir() or self._store.snapshot_dir(self.manifest)

    def is_installed(self) -> bool:
        override = self._override_dir()
        if override is None:
            return self._store.is_installed(self.manifest)
        return not missing_parts(override)

    def size_bytes(self) -> int:
        override = self._override_dir()
        if override is None:  # what the download needs until it is on disk
            return self._store.install_size_bytes(self.manifest)
        return sum(p.stat().st_size for sub in SUBDIRS for p in (override / sub).rglob("*") if p.is_file())

    @property
    def loaded(self) -> bool:
        return self._pipeline is not None

    def _wants_compile(self, device: str) -> bool:
        """Config ``ace_step_compile``: true compiles on CUDA, "always" on any device."""
        wanted = self._settings.prefs.extra.get(PREFS_COMPILE_KEY, False)
        return wanted == "always" or (wanted is True and device == "cuda")

    # -- load / unload -----------------------------------------------------------------

    def load(self, device: DevicePlan) -> None:
        if self._pipeline is not None:
            return
        root = self._verified_root()
        needs = self._memory_needs(root, device)
        target = resolve(device, vram_needed_bytes=needs.total(self._dtype_for(device, None)))
        dtype = self._dtype_for(device, target)
        target = ResolvedDevice(device=target.device, dtype=dtype, low_vram=target.low_vram)
        self._check_memory(needs, target)

        import torch

        from .pipeline import AceStepPipeline  # torch + transformers: only now

        try:
            pipeline = AceStepPipeline.from_checkpoint(
                root, device=target.device, dtype=target.dtype, offload=target.low_vram,
                compile=self._wants_compile(target.device))
        except LofiError:
            raise
        except MemoryError as exc:
            raise ModelLoadFailed(f"ACE-Step does not fit in memory: {exc}",
                                  hint="Close other programs or enable low_vram mode.") from None
        except RuntimeError as exc:  # CUDA OOM while moving weights; the estimate was optimistic
            empty_cache(target.device)
            raise ModelLoadFailed(f"ACE-Step could not be loaded on {target.device}: {exc}",
                                  hint="Close other programs or enable low_vram mode.") from None
        except Exception as exc:  # unreadable files surface as assorted library errors
            raise ModelLoadFailed(f"ACE-Step could not be loaded from {root}: {exc}", hint=SETUP_HINT) from exc
        self._pipeline, self._target = pipeline, target
        threads = torch.get_num_threads()
        if not (self._costs and (self._costs.device, self._costs.threads) == (target.device, threads)):
            self._costs = CostModel(target.device, threads)
        log.info("ace_step: loaded %s on %s (%s%s)", root, target.device, target.dtype_name,
                 ", low-VRAM" if target.low_vram else "")

    def held_memory(self) -> dict[str, Any] | None:
        pipeline, target = self._pipeline, self._target
        if pipeline is None or target is None:
            return None
        from ...memory import tensor_bytes

        weights = tensor_bytes([pipeline.transformer, pipeline.text_encoder.model, pipeline.decoder])
        return {"weight_bytes": weights, "device": target.device, "low_vram": target.low_vram}

    def unload(self) -> None:
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is None:
            return
        device = self._target.device if self._target else "cpu"
        del pipeline
        empty_cache(device)

    # -- generate ------------------------------------------------------------------------

    def generate(self, request: GenerationRequest, progress: Progress, cancel: CancelToken) -> GeneratedAudio:
        if self._pipeline is None or self._target is None or self._costs is None:
            raise ModelLoadFailed("ace_step is not loaded", hint="This is a bug: the job ran before load().")
        import numpy as np
        import torch

        from .pipeline import frame_length, guided_calls, transformer_calls

        params = self.capabilities().resolve_params(dict(request.params))
        frames = frame_length(request.duration_sec)
        calls = transformer_calls(params["inference_steps"], params["scheduler"])
        guided = guided_calls(params["inference_steps"], params["scheduler"], params["guidance_scale"],
                              params["guidance_interval"])
        progress.plan(self._costs.plan(frames, calls, guided))
        clock = PhaseClock(progress)
        windows = request.windows  # someone plays it as it decodes; never changes the audio
        try:
            output = self._pipeline(
                prompt=request.prompt,
                duration=float(request.duration_sec),
                infer_step=params["inference_steps"],
                seed=int(request.seed),
                scheduler_type=params["scheduler"],
                cfg_type=params["cfg_type"],
                guidance_scale=params["guidance_scale"],
                omega_scale=params["omega_scale"],
                guidance_interval=params["guidance_interval"],
                guidance_interval_decay=params["guidance_interval_decay"],
                min_guidance_scale=params["min_guidance_scale"],
                use_erg_tag=params["use_erg_tag"],
                use_erg_lyric=params["use_erg_lyric"],
                use_erg_diffusion=params["use_erg_diffusion"],
                lyrics=params["instrumental_tag"],
                progress=clock,
                cancel=cancel,
                on_audio=None if windows is None else (lambda piece: windows.window(piece, SAMPLE_RATE)),
            )
        except LofiError:
            raise
        except torch.cuda.OutOfMemoryError as exc:
            raise ModelInferenceFailed(f"out of GPU memory while generating: {exc}",
                                       hint="Try a shorter track or set low_vram = 'on'.") from None
        except RuntimeError as exc:
            raise ModelInferenceFailed(f"ACE-Step failed while generating: {exc}", hint=RETRY_HINT) from exc
        finally:
            if self._target.device != "cpu":
                empty_cache(self._target.device)
        clock.finish()
        self._costs.learn(clock.seconds, frames, calls, guided)

        samples = output.wav_48k.numpy().astype(np.float32, copy=False)
        return GeneratedAudio(
            samples=samples,
            sample_rate=output.sample_rate,
            metadata={
                **self._target.describe(),
                "model_version": self.model_version,
                "frame_length": output.frame_length,
                "true_duration_sec": round(output.duration_sec, 6),
                "transformer_calls": calls,
                "resampler": "soxr",
                "phase_seconds": {k: round(v, 3) for k, v in clock.seconds.items()},
            },
        )

    # -- load steps ------------------------------------------------------------------------

    def _verified_root(self) -> Path:
        override = self._override_dir()
        if override is None:
            # BACKEND_NOT_INSTALLED / MODEL_LOAD_FAILED (damaged file) with their hints.
            return self._store.verify_for_load(self.manifest)
        missing = missing_parts(override)
        if missing:
            raise ModelLoadFailed(
                f"{override} is not an ACE-Step checkpoint folder: missing {', '.join(missing)}",
                hint=f"Point {ENV_DIR} / {PREFS_DIR_KEY} at a folder with {', '.join(SUBDIRS)}, "
                     "or unset it and run :LofiSetup ace-step.",
                path=str(override),
            )
        return override

    @staticmethod
    def _dtype_for(plan: DevicePlan, target: ResolvedDevice | None) -> Any:
        import torch

        if target is None:  # before the device is known: size for the worst case we would pick
            return torch.bfloat16 if plan.dtype == "auto" else getattr(torch, plan.dtype)
        if target.device == "cuda" and plan.dtype == "auto" and target.dtype == torch.float16:
            # The official model runs in bf16 or fp32 only; fp16 overflows. Pre-Ampere GPU: fp32.
            return torch.float32
        return target.dtype

    def _memory_needs(self, root: Path, plan: DevicePlan) -> "_MemoryNeeds":
        from .checkpoint import is_unused_transformer_key, tensor_bytes, weight_files

        try:
            elements = {
                "transformer": tensor_bytes(weight_files(root / "ace_step_transformer"), 1, is_unused_transformer_key),
                "text_encoder": tensor_bytes(weight_files(root / "umt5-base", "model"), 1),
                "dcae": tensor_bytes(weight_files(root / "music_dcae_f8c8"), 1, lambda k: k.startswith("encoder.")),
                "vocoder": tensor_bytes(weight_files(root / "music_vocoder"), 1),
            }
        except LofiError:
            raise
        except Exception as exc:
            raise ModelLoadFailed(f"cannot read the ACE-Step weights in {root}: {exc}", hint=SETUP_HINT) from exc
        return _MemoryNeeds(elements)

    @staticmethod
    def _check_memory(needs: "_MemoryNeeds", target: ResolvedDevice) -> None:
        # ACE-Step v1 has one size; the smaller choices are placements and other backends.
        other_backends = "backend = 'ace_step_15' (its 2B turbo needs less) or 'musicgen'"
        if target.device == "cuda" and target.low_vram:
            check_memory(needs.largest(target.dtype), "cuda", "the largest ACE-Step component (low-VRAM mode)",
                         choices=[other_backends])
            check_memory(needs.weights(target.dtype), "cpu", "ACE-Step (kept in RAM in low-VRAM mode)",
                         choices=[other_backends])
        else:
            placements = ["low_vram = 'on' (one component on the GPU at a time)"] if target.device == "cuda" else []
            check_memory(needs.total(target.dtype), target.device, "ACE-Step", choices=[*placements, other_backends])


@dataclass
class _MemoryNeeds:
    """Parameter counts per component (read from the safetensors headers)."""

    elements: dict[str, int]
    #: Activations and the decode's working memory (windowed above 48 s), plus allocator slack.
    ACTIVATIONS_BYTES = int(1.5 * 2**30)

    def weights(self, dtype: Any) -> int:
        return sum(self.elements.values()) * dtype.itemsize

    def largest(self, dtype: Any) -> int:
        return max(self.elements.values()) * dtype.itemsize + self.ACTIVATIONS_BYTES

    def total(self, dtype: Any) -> int:
        return self.weights(dtype) + self.ACTIVATIONS_BYTES
