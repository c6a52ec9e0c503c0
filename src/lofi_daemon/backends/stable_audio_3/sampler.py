"""The official Stable Audio 3 sampling loop, step by step so progress and cancel work per step.

What the reference does (``stable_audio_3/model.py`` + ``inference/sampling.py``), which
diffusers' pipeline does differently and we follow:

* the latent length covers ``duration + 6 s`` of headroom, rounded up to an even number of
  latents (SAME-S blocks are two latents) and capped at the model's ``sample_size``; the audio
  is trimmed to the duration after decoding;
* the schedule is uniform in log-SNR from 2.0 down to -6.2 (``sigma = sigmoid(-logsnr)``),
  with the ends forced to exactly 1 and 0: diffusers' ``logsnr_sigma_schedule`` plus the 0;
* the DiT gets raw ``t`` in [0, 1] (not ``t * 1000``);
* ping-pong: ``x0 = x - t * v``, then ``x = (1 - t_next) * x0 + t_next * noise`` with fresh noise
  each step, drawn from the caller's generator (same seed, same track);
* the inpaint conditioning is always fed: zeros when nothing is kept (see ``inpaint.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import torch

LOGSNR_MAX = 2.0  # low-noise end (t = 0)
LOGSNR_MIN = -6.2  # high-noise end (t = 1)
HEADROOM_SECONDS = 6.0


def sigma_schedule(steps: int) -> list[float]:
    """``steps + 1`` noise levels from 1 to 0, uniform in log-SNR."""
    from diffusers.pipelines.stable_audio_3.pipeline_stable_audio_3 import logsnr_sigma_schedule

    if steps < 1:
        raise ValueError("steps must be at least 1")
    return [*logsnr_sigma_schedule(steps, LOGSNR_MIN, LOGSNR_MAX, sigma_max=1.0), 0.0]


def latent_length(duration: float, *, sample_rate: int = 44100, samples_per_latent: int = 4096,
                  latents_per_block: int = 2, max_samples: int = 5292032,
                  headroom: float = HEADROOM_SECONDS) -> int:
    """Latents to generate for ``duration`` seconds: headroom, block-aligned, capped."""
    samples = int((duration + headroom) * sample_rate)
    align = samples_per_latent * latents_per_block
    samples = -(-samples // samples_per_latent) * samples_per_latent
    samples = -(-samples // align) * align
    return min(samples, max_samples) // samples_per_latent


StepFn = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]


def pingpong(velocity: StepFn, x: "torch.Tensor", sigmas: list[float], *,
             noise: Callable[[int], "torch.Tensor"],
             before_step: Callable[[int], None] = lambda i: None,
             after_step: Callable[[int], None] = lambda i: None) -> "torch.Tensor":
    """Run the loop from noise ``x``. ``velocity(x, t)`` is the DiT; ``noise(i)`` draws the noise
    that re-enters after step ``i``; ``before_step`` may raise to stop (cancel) before a step."""
    import torch

    for i in range(len(sigmas) - 1):
        before_step(i)
        t, t_next = sigmas[i], sigmas[i + 1]
        t_batch = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)
        denoised = x - t * velocity(x, t_batch)
        x = (1 - t_next) * denoised + t_next * noise(i)
        after_step(i)
    return x
