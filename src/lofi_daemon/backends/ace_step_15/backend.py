"""The ``ace_step_15`` backend: ACE-Step 1.5 instrumental tracks, 10 s to 10 min, at 48 kHz.

Which model: the config key ``ace_step_15_variant`` (or ``LOFI_ACESTEP15_VARIANT``), one of
``variants.VARIANTS``; default the 2B turbo. An unknown name is INVALID_PARAMS (naming the
choices) when the backend is set up or used; ``get_backends`` still lists it.

Setup (daemon and CLI: ``App.install``) downloads exactly the variant's files
(``models.manifests.ace_step_15_manifest``); for the original-layout repo ``finish_setup``
then converts the DiT + condition encoder into diffusers folders. Loading is plain
diffusers/transformers ``from_pretrained`` of local folders.

Device rules as for v1 (``device.resolve``): CUDA in bfloat16, MPS and CPU in float32;
low-VRAM mode (automatic when the whole model does not fit the GPU, or ``low_vram = on``)
keeps the components in RAM and moves each to the GPU while it runs (``placement.py``).
Before loading, the weights' size (from the safetensors headers) plus working memory is
compared with free memory; both numbers are in the error.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ...device import DevicePlan, ResolvedDevice, check_memory, empty_cache, resolve
from ...errors import InvalidParams, LofiError, ModelInferenceFailed, ModelLoadFailed
from ...models.manifests import ace_step_15_manifest
from ...cancel import CancelToken
from ..base import Backend, Capabilities, GeneratedAudio, GenerationRequest, ParamSpec, Progress
from ..phase_costs import PhaseClock, PhaseCosts
from .decode import TilePlan
from .variants import ENV_VARIANT, PREFS_VARIANT_KEY, VARIANTS, Variant, choose_variant

if TYPE_CHECKING:
    from ...models.manifest import ModelManifest
    from ...models.store import ModelStore
    from ...settings import Settings
    from .components import ComponentPaths

log = logging.getLogger(__name__)

MIN_DURATION_SEC = 10.0
MAX_DURATION_SEC = 600.0  # the condition encoder's silence latent covers 600 s
SAMPLE_RATE = 48_000
LATENTS_PER_SEC = 25  # 48 kHz / the VAE's hop of 1920
SETUP_HINT = "Run :LofiSetup ace-step-1.5 again."
RETRY_HINT = "Retry with another seed."
NOTES = "ABCDEFG"
KEYSCALES = ("",) + tuple(f"{n}{acc} {mode}" for n in NOTES for acc in ("", "#", "b") for mode in ("major", "minor"))
TIME_SIGNATURES = ("", "2", "3", "4", "6")
INSTRUMENTAL_TAGS = ("[Instrumental]", "[inst]", "")
MIN_BPM, MAX_BPM = 30, 300


def parameters(variant: Variant) -> tuple[ParamSpec, ...]:
    guidance = ("Ignored by turbo models (guidance is distilled into them)." if variant.turbo
                else "APG guidance strength (1 = off).")
    return (
        ParamSpec("inference_steps", "int", variant.steps, 1, 200,
                  description=f"Denoising steps ({variant.steps} is what this model is made for)."),
        ParamSpec("guidance_scale", "float", variant.guidance_scale, 1.0, 20.0, description=guidance),
        ParamSpec("shift", "float", variant.shift, 1.0, 5.0,
                  description="Timestep shift: higher spends more steps on coarse structure."),
        ParamSpec("cfg_interval_start", "float", 0.0, 0.0, 1.0,
                  description="Fraction of the schedule where guidance starts (base models)."),
        ParamSpec("cfg_interval_end", "float", 1.0, 0.0, 1.0,
                  description="Fraction of the schedule where guidance ends (base models)."),
        ParamSpec("bpm", "int", 0, 0, MAX_BPM, description=f"Tempo, {MIN_BPM}-{MAX_BPM} (0 = let the model choose)."),
        ParamSpec("keyscale", "choice", "", choices=KEYSCALES, description="Key, e.g. 'A minor' ('' = unset)."),
        ParamSpec("timesignature", "choice", "", choices=TIME_SIGNATURES,
                  description="Beats per bar: 2, 3, 4 or 6 (6/8) ('' = unset)."),
        ParamSpec("instrumental_tag", "choice", "[Instrumental]", choices=INSTRUMENTAL_TAGS,
                  description="Lyrics that ask for no vocals ('[Instrumental]' is the official one)."),
    )


@dataclass
class CostModel(PhaseCosts):
    """ACE-Step 1.5's phases for ``(latents, calls)``.

    text = a; one transformer call = b + c * latents; decode = d * latents. CPU: core-seconds
    of the full-size 2B turbo in float32 from bench/bench_ace_step_15.py (docs/benchmarks.md:
    26.2 CPU-s per call at 750 latents, 89.7 at 3000, 4.8 CPU-s of decode per second of audio
    = 25 latents); the text encoder is a guess. MPS and CUDA are unmeasured guesses: only the
    ratios between phases matter for the percent, and each run corrects them.
    """

    _BASE = {
        "cpu": (4.0, 5.0, 0.028, 0.192),
        "mps": (0.3, 0.3, 0.002, 0.01),
        "cuda": (0.1, 0.02, 0.0001, 0.001),
    }

    def work(self, latents: int, calls: int, kept: int = 0) -> dict[str, float]:
        text, fixed, per_latent, decode = self._BASE.get(self.device, self._BASE["cpu"])
        # A continuation encodes its kept head first (counted with the text phase, which it
        # precedes); the encoder is guessed to cost what the decoder does per latent.
        return {"text": text + decode * kept, "diffusion": calls * (fixed + per_latent * latents),
                "decode": decode * latents}


class AceStep15Backend(Backend):
    name = "ace_step_15"
    requires = ("torch", "transformers", "diffusers")

    def __init__(self, settings: "Settings", store: "ModelStore") -> None:
        self._settings = settings
        self._store = store
        configured = os.environ.get(ENV_VARIANT) or settings.prefs.extra.get(PREFS_VARIANT_KEY)
        try:
            self.variant: Variant | None = choose_variant(configured)
            self._variant_error: InvalidParams | None = None
        except InvalidParams as exc:  # reported when the backend is set up or used, not at start
            self.variant, self._variant_error = None, exc
            log.warning("ace_step_15: %s", exc.message)
        self._pipe: Any = None
        self._placement: Any = None  # low-VRAM mode's OneAtATime
        self._target: ResolvedDevice | None = None
        self._costs: CostModel | None = None
        self.tiles = TilePlan()

    # -- what the daemon asks before loading -------------------------------------------

    def _chosen(self) -> Variant:
        if self.variant is None:
            assert self._variant_error is not None
            raise self._variant_error
        return self.variant

    @property
    def manifest(self) -> "ModelManifest":  # type: ignore[override]
        """What setup downloads (raises INVALID_PARAMS for an unknown variant)."""
        return ace_step_15_manifest(self._chosen().key)

    @property
    def model_version(self) -> str:  # type: ignore[override]
        if self.variant is None:
            return "unknown-variant"
        manifest = self.manifest
        return f"{manifest.repo_id}@{self._store.commit(manifest) or manifest.revision}:{self.variant.key}"

    def capabilities(self) -> Capabilities:
        if self.variant is None:  # still listed, with the problem; every request is refused
            assert self._variant_error is not None
            return _RefusingCapabilities(MIN_DURATION_SEC, MAX_DURATION_SEC, SAMPLE_RATE,
                                         parameters(VARIANTS["turbo"]), f"ACE-Step 1.5: {self._variant_error.message}",
                                         error=self._variant_error)
        return Capabilities(min_duration_sec=MIN_DURATION_SEC, max_duration_sec=MAX_DURATION_SEC,
                            sample_rate=SAMPLE_RATE, parameters=parameters(self.variant),
                            description=self.variant.description, continues_audio=True,
                            decodes_in_windows=True)

    def _converted_dir(self) -> Path:
        manifest = self.manifest
        commit = self._store.commit(manifest) or manifest.revision
        return self._store.repo_dir(manifest) / "lofi-diffusers" / commit / self._chosen().dit_folder

    def _dit_dir(self) -> Path:
        return self._store.snapshot_dir(self.manifest) / self._chosen().dit_folder

    def is_installed(self) -> bool:
        if self.variant is None or not self._store.is_installed(self.manifest):
            return False
        if self.variant.layout != "original":
            return True
        from .convert import conversion_problem

        return conversion_problem(self._dit_dir(), self._converted_dir(), thorough=False) is None

    def size_bytes(self) -> int:
        if self.variant is None:
            return 0
        return self._store.install_size_bytes(self.manifest)

    @property
    def loaded(self) -> bool:
        return self._pipe is not None

    # -- setup ---------------------------------------------------------------------------

    def finish_setup(self, on_progress: Callable[[Any], None] | None = None,
                     cancel: CancelToken | None = None) -> None:
        """After the download: convert the original layout (once; again if the download changed)."""
        if self._chosen().layout != "original":
            return
        from .convert import conversion_problem, convert

        if conversion_problem(self._dit_dir(), self._converted_dir(), thorough=True) is None:
            return
        from ...models.progress import DownloadProgress

        downloaded = self._store.size_bytes(self.manifest)

        def report(done: int, total: int) -> None:
            if on_progress is not None:
                on_progress(DownloadProgress(self.name, "convert", round(100.0 * done / max(total, 1), 2), 100.0,
                                             downloaded, downloaded))

        report(0, 1)
        convert(self._dit_dir(), self._converted_dir(), hint=SETUP_HINT, on_progress=report, cancel=cancel)
        report(1, 1)

    # -- load / unload -----------------------------------------------------------------

    def _paths(self) -> "ComponentPaths":
        from .components import ComponentPaths

        variant = self._chosen()
        snapshot = self._store.verify_for_load(self.manifest)  # NOT_INSTALLED / MODEL_LOAD_FAILED + hint
        if variant.layout != "original":
            return ComponentPaths.diffusers(snapshot)
        from .convert import conversion_problem, forget

        converted = self._converted_dir()
        problem = conversion_problem(self._dit_dir(), converted, thorough=True)
        if problem is not None:
            forget(converted)  # so setup converts again
            raise ModelLoadFailed(f"the converted ACE-Step 1.5 weights in {converted} are not usable: {problem}",
                                  hint=SETUP_HINT, path=str(converted))
        return ComponentPaths.original(snapshot, converted)

    def load(self, device: DevicePlan) -> None:
        if self._pipe is not None:
            return
        from .components import weight_bytes

        paths = self._paths()
        fp32_bytes = weight_bytes(paths, SETUP_HINT)
        plan_target = resolve(device)
        needs = _MemoryNeeds(fp32_bytes, self._chosen().key)
        target = resolve(device, vram_needed_bytes=needs.total(plan_target.dtype))
        needs.check(target)

        import torch

        from .components import load_pipeline  # torch, transformers, diffusers: only now
        from .placement import OneAtATime, pinned_pipeline_class

        try:
            if target.low_vram:  # components stay in RAM and visit the GPU in turn
                pipe = load_pipeline(paths, dtype=target.dtype, hint=SETUP_HINT,
                                     pipeline_class=pinned_pipeline_class(target.device))
                self._placement = OneAtATime(pipe, target.device)
            else:
                pipe = load_pipeline(paths, dtype=target.dtype, hint=SETUP_HINT)
                pipe.to(target.device)
                self._placement = None
        except LofiError:
            raise
        except (MemoryError, RuntimeError) as exc:  # e.g. CUDA OOM while moving weights
            empty_cache(target.device)
            raise ModelLoadFailed(f"ACE-Step 1.5 could not be loaded on {target.device}: {exc}",
                                  hint="Close other programs or pick a smaller variant.") from None
        self._pipe, self._target = pipe, target
        threads = torch.get_num_threads()
        if self._costs is None or (self._costs.device, self._costs.threads) != (target.device, threads):
            self._costs = CostModel(target.device, threads)
        log.info("ace_step_15: loaded %s on %s (%s)", self.model_version, target.device, target.dtype_name)

    def held_memory(self) -> dict[str, Any] | None:
        pipe, target = self._pipe, self._target
        if pipe is None or target is None:
            return None
        from ...memory import tensor_bytes

        return {"weight_bytes": tensor_bytes([pipe]), "device": target.device, "low_vram": target.low_vram}

    def unload(self) -> None:
        pipe, self._pipe, self._placement = self._pipe, None, None
        if pipe is None:
            return
        device = self._target.device if self._target else "cpu"
        del pipe
        empty_cache(device)

    # -- generate ------------------------------------------------------------------------

    def generate(self, request: GenerationRequest, progress: Progress, cancel: CancelToken) -> GeneratedAudio:
        if self._pipe is None or self._target is None or self._costs is None:
            raise ModelLoadFailed("ace_step_15 is not loaded", hint="This is a bug: the job ran before load().")
        import math

        import numpy as np
        import torch

        from . import extend
        from .decode import decode, normalize
        from .sampling import SamplingRequest, sample_latents

        params = self.capabilities().resolve_params(dict(request.params), backend=self.name)
        bpm = params["bpm"]
        if 0 < bpm < MIN_BPM:
            raise InvalidParams(f"parameter 'bpm' must be 0 (unset) or {MIN_BPM}-{MAX_BPM}, got {bpm}", field="bpm")
        if params["cfg_interval_start"] > params["cfg_interval_end"]:
            raise InvalidParams("cfg_interval_start must not be after cfg_interval_end", field="cfg_interval_start")
        latents_len = math.ceil(request.duration_sec * LATENTS_PER_SEC)
        # Continuing: the source's last seconds (read and checked before any model work).
        head = (extend.read_head(request.continue_from.path, float(request.duration_sec))
                if request.continue_from is not None else None)
        kept = 0 if head is None else head.kept
        steps = params["inference_steps"]
        guided = not self._pipe.is_turbo and params["guidance_scale"] > 1.0
        shape = (latents_len, steps * (2 if guided else 1), kept)
        progress.plan(self._costs.plan(*shape))
        clock = PhaseClock(progress)
        sampling = dict(
            prompt=request.prompt, duration_sec=float(request.duration_sec), seed=int(request.seed), steps=steps,
            guidance_scale=params["guidance_scale"], shift=params["shift"],
            cfg_interval_start=params["cfg_interval_start"], cfg_interval_end=params["cfg_interval_end"],
            lyrics=params["instrumental_tag"], bpm=bpm or None, keyscale=params["keyscale"] or None,
            timesignature=params["timesignature"] or None)
        device = self._target.device
        try:
            if head is not None:
                clock("text", 0, 1)
                if self._placement is not None:
                    self._placement.bring("vae")
                head = extend.encode_head(self._pipe.vae, head, device, self._pipe.transformer.dtype)
                cancel.check(0, steps)
            latents = sample_latents(self._pipe, SamplingRequest(**sampling, head=head), device, report=clock,
                                     cancel=cancel)
            clock("decode", 0, self.tiles.count(latents.shape[1]))
            if self._placement is not None:
                self._placement.bring("vae")
            splicer = extend.Splicer(head) if head is not None else None
            windows: list[Any] = []

            def on_piece(piece: "torch.Tensor") -> None:
                # A continuation's windows are final as they are decoded (extend.Splicer): they go
                # out at once. A plain track's wait for the whole track's peak (below).
                if splicer is None:
                    return
                if not bool(torch.isfinite(piece).all()):
                    raise ModelInferenceFailed("the decoded audio contains NaN/inf", hint=RETRY_HINT)
                windows.append(splicer.window(piece[0].to("cpu", torch.float32).numpy()))
                if request.windows is not None:
                    request.windows.window(windows[-1], SAMPLE_RATE)

            audio = decode(self._pipe.vae, latents, self.tiles, on_tile=lambda i, n: clock("decode", i, n),
                           cancel=cancel, on_piece=on_piece)
            if splicer is None:
                if not bool(torch.isfinite(audio).all()):
                    raise ModelInferenceFailed("the decoded audio contains NaN/inf", hint=RETRY_HINT)
                samples = normalize(audio)[0].to("cpu", torch.float32).numpy()
                if request.windows is not None:  # the pipeline's loudness needs the last tile first
                    for start, end, _, _ in self.tiles.tiles(latents.shape[1]):
                        request.windows.window(samples[:, start * extend.HOP:end * extend.HOP], SAMPLE_RATE)
            else:
                samples = np.concatenate(windows, axis=-1) if len(windows) > 1 else windows[0]
            del audio
        except LofiError:
            raise
        except torch.cuda.OutOfMemoryError as exc:
            raise ModelInferenceFailed(f"out of GPU memory while generating: {exc}",
                                       hint="Try a shorter track or a smaller variant.") from None
        except (RuntimeError, ValueError) as exc:
            raise ModelInferenceFailed(f"ACE-Step 1.5 failed while generating: {exc}", hint=RETRY_HINT) from exc
        finally:
            if device != "cpu":
                empty_cache(device)
        clock.finish()
        self._costs.learn(clock.seconds, *shape)
        continuation: dict[str, Any] = {}
        if head is not None:
            continuation = {"continues": request.continue_from.track_id,  # type: ignore[union-attr]
                            "join_frame": head.join_frame,  # the radio's flow joins there
                            # ... moving over the source's last frames into our crossfade, which
                            # ends in the decode: the source's file ends in the writer's 5 ms fade,
                            # the decode at join_frame does not (playback/stream.py)
                            "lead_in_frames": splicer.crossfade if splicer is not None else 0,
                            "kept_latents": head.kept}
        return GeneratedAudio(samples=samples, sample_rate=SAMPLE_RATE, metadata={
            **self._target.describe(),
            "model_version": self.model_version,
            "variant": self._chosen().key,
            "latent_length": latents_len,
            "true_duration_sec": round(samples.shape[-1] / SAMPLE_RATE, 6),
            "decode_tiles": self.tiles.count(latents_len),
            "phase_seconds": {k: round(v, 3) for k, v in clock.seconds.items()},
            **continuation,
        })


@dataclass(frozen=True)
class _RefusingCapabilities(Capabilities):
    """Capabilities of a misconfigured backend: described as usual, but no request validates."""

    error: InvalidParams | None = None

    def resolve_params(self, given: dict[str, Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        assert self.error is not None
        raise self.error


@dataclass
class _MemoryNeeds:
    """Float32 weight bytes per component (safetensors headers) and the working memory."""

    fp32_bytes: dict[str, int]
    variant: str = "turbo"
    #: Activations of a 600 s track's DiT call plus one decode tile, and allocator slack.
    ACTIVATIONS_BYTES = int(2.5 * 2**30)

    def weights(self, dtype: Any) -> int:
        return sum(self.fp32_bytes.values()) * dtype.itemsize // 4

    def largest(self, dtype: Any) -> int:
        return max(self.fp32_bytes.values()) * dtype.itemsize // 4 + self.ACTIVATIONS_BYTES

    def total(self, dtype: Any) -> int:
        return self.weights(dtype) + self.ACTIVATIONS_BYTES

    def choices(self, target: ResolvedDevice) -> list[str]:
        """Smaller ways than this load: the 2B variant, one component on the GPU, musicgen."""
        out = [] if self.variant == "turbo" else ["ace_step_15_variant = 'turbo' (2B, the smallest)"]
        if target.device == "cuda" and not target.low_vram:
            out.append("low_vram = 'on' (one component on the GPU at a time)")
        out.append("backend = 'musicgen' (musicgen-small needs far less)")
        return out

    def check(self, target: ResolvedDevice) -> None:
        choices = self.choices(target)
        if target.low_vram:
            check_memory(self.largest(target.dtype), target.device, "the largest ACE-Step 1.5 component (low-VRAM)",
                         choices=choices)
            check_memory(self.weights(target.dtype), "cpu", "ACE-Step 1.5 (kept in RAM in low-VRAM mode)",
                         choices=choices)
        else:
            check_memory(self.total(target.dtype), target.device, "ACE-Step 1.5", choices=choices)
