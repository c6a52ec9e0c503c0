"""Run diffusers' ``AceStepPipeline`` up to the final latents, with progress, cancel and a NaN check.

The pipeline does text encoding, conditioning, the schedule and the denoising loop (APG for
base models) itself; we call it with ``output_type="latent"`` so it stops before its own
decode, and decode ourselves in tiles (``decode.py``). Its step-end callback is our hook:

- progress: one unit per step;
- cancel: raising ``JobCancelled`` from the callback unwinds the call at once. (Setting
  ``pipe._interrupt`` would break the loop but still return the partial latents, and the
  caller would decode them; an exception means nothing after the cancelled step runs.)
- NaN/inf in the latents -> MODEL_INFERENCE_FAILED naming the step;
- continuing a track (``head`` set): the pipeline's repaint task with the head as source and
  the span from its end to the track's end; the kept latents are put back after every step
  (``extend.py``).

Seeds: one ``torch.Generator`` per call on the execution device, seeded from the job's
seed, is the only randomness (the initial noise); same seed, same device -> same latents.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from ...errors import ModelInferenceFailed

if TYPE_CHECKING:
    import torch

    from ...cancel import CancelToken
    from .extend import Head

RETRY_HINT = "Retry with another seed."
#: Upstream's vocal language when none is known (``GenerationParams.vocal_language``).
VOCAL_LANGUAGE = "unknown"


@dataclass(frozen=True)
class SamplingRequest:
    prompt: str
    duration_sec: float
    seed: int
    steps: int
    guidance_scale: float
    shift: float
    cfg_interval_start: float
    cfg_interval_end: float
    lyrics: str
    bpm: int | None
    keyscale: str | None
    timesignature: str | None
    head: "Head | None" = None  # continue: the source's encoded tail, kept as the first latents


def sample_latents(pipe: Any, request: SamplingRequest, device: str, *,
                   report: Callable[[str, int, int], None], cancel: "CancelToken") -> "torch.Tensor":
    """The denoised latents [1, T, C] for ``request`` (T = ceil(duration * 25))."""
    import torch

    from .extend import LATENTS_PER_SEC, keep_head

    steps = request.steps
    generator = torch.Generator(device=device).manual_seed(int(request.seed))
    head = request.head
    extend: dict[str, Any] = {}
    if head is not None:
        from diffusers.utils.torch_utils import randn_tensor

        length = math.ceil(request.duration_sec * LATENTS_PER_SEC)
        # The pipeline's own draw (same shape, generator, device, dtype), made here so the
        # kept latents can be noised with it at every step.
        noise = randn_tensor((1, length, head.latents.shape[-1]), generator=generator, device=torch.device(device),
                             dtype=pipe.transformer.dtype)
        # +0.5: the pipeline floors start * 25, and k / 25 * 25 can land a hair under k.
        extend = {"task_type": "repaint", "src_audio": torch.from_numpy(head.samples), "latents": noise,
                  "repainting_start": (head.kept + 0.5) / LATENTS_PER_SEC, "repainting_end": None}
    report("text", 0, 1)
    cancel.check(0, steps)

    def diffusion_starts(_module: Any, _args: Any) -> None:  # the encoders are done: the first DiT call
        first_call.remove()
        report("text", 1, 1)
        report("diffusion", 0, steps)

    first_call = pipe.transformer.register_forward_pre_hook(diffusion_starts)
    pipe.head_latents = None if head is None else head.latents

    def on_step_end(_pipe: Any, step: int, _timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        latents = tensors["latents"]
        if not bool(torch.isfinite(latents).all()):
            raise ModelInferenceFailed(f"the latents became NaN/inf at denoising step {step + 1} of {steps}",
                                       hint=RETRY_HINT, at_step=step + 1, total_steps=steps)
        report("diffusion", step + 1, steps)
        cancel.check(step + 1, steps)
        if head is None:
            return {}
        sigma = float(_pipe.scheduler.sigmas[step + 1])  # where this step left the latents (0 at the end)
        return {"latents": keep_head(latents, head.latents, noise, sigma)}

    try:
        with torch.no_grad():  # not inference_mode: low-VRAM hooks move modules inside this call
            out = pipe(
                prompt=request.prompt,
                lyrics=request.lyrics,
                audio_duration=float(request.duration_sec),
                vocal_language=VOCAL_LANGUAGE,
                num_inference_steps=steps,
                # Turbo pipelines force 1.0 (and warn on anything else): pass what will be used.
                guidance_scale=1.0 if pipe.is_turbo else request.guidance_scale,
                shift=request.shift,
                generator=generator,
                output_type="latent",
                callback_on_step_end=on_step_end,
                bpm=request.bpm,
                keyscale=request.keyscale,
                timesignature=request.timesignature,
                cfg_interval_start=request.cfg_interval_start,
                cfg_interval_end=request.cfg_interval_end,
                **extend,
            )
    finally:
        first_call.remove()  # a call that failed before the DiT ran
        pipe.head_latents = None
    return out.audios
