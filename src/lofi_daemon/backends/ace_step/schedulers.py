"""The three flow-matching samplers of ACE-Step v1: euler, heun and pingpong.

For the pipeline (stable names):

    scheduler = make_scheduler("euler" | "heun" | "pingpong", shift=3.0, num_train_timesteps=1000)
    scheduler.set_timesteps(num_steps, device)        # sets .timesteps ([calls]) and .sigmas ([calls+1])
    for t in scheduler.timesteps:                     # heun: 2N-1 entries, the others N
        latents = scheduler.step(velocity, t, latents, omega=omega_scale, generator=g)

``omega`` is the user's ``omega_scale`` (official default 10); it is squashed here to
``0.9 + 0.2 * sigmoid(0.1 * omega)`` as the official code does. ``generator`` is only
used by pingpong, which draws one ``normal_`` of the latent's shape from it per step (the
same generator that drew the initial noise, so a seed reproduces the official track).

Schedule (all three, as the official classes compute it): training sigmas
``s = i/1000`` (i = 1000 .. 1, float32) shifted once, ``shift*s / (1 + (shift-1)*s)``; its
first and last value (1.0 and 0.002994) bound a float64 ``linspace`` over N steps that is
divided by 1000 and shifted *again*, then stored as float32; ``timesteps = 1000*sigmas``
and a trailing sigma 0 is appended. Heun repeats every timestep but the first and every
sigma but the first and the trailing 0.

Steps (``v`` = model output, all with the sample upcast to float32 and the result cast
back to ``v``'s dtype):

* euler: ``dx = (sigma_next - sigma) * v``; ``x + (dx - mean(dx)) * omega' + mean(dx)``
  (the mean is over the whole tensor, batch included).
* heun: an Euler predictor that stores its derivative, then a corrector that averages
  both derivatives and restarts from the stored sample; the omega mean-shift is applied
  to ``dx`` in both; the last call is a plain first-order step to sigma 0.
* pingpong: ``x0 = x - sigma * v`` and ``x = (1 - sigma_next) * x0 + sigma_next * noise``;
  omega has no effect.

Steps must be called once per entry of ``timesteps``, in order (the scheduler counts);
``set_timesteps`` starts over.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ...errors import InvalidParams

if TYPE_CHECKING:
    import torch

SCHEDULERS = ("euler", "heun", "pingpong")


def make_scheduler(name: str, shift: float = 3.0, num_train_timesteps: int = 1000) -> "FlowMatchScheduler":
    """A fresh scheduler by its official name (``scheduler_type``)."""
    classes = {"euler": EulerScheduler, "heun": HeunScheduler, "pingpong": PingPongScheduler}
    if name not in classes:
        raise InvalidParams(
            f"unknown scheduler {name!r}", hint=f"Use one of {list(SCHEDULERS)}.", field="scheduler", choices=list(SCHEDULERS)
        )
    return classes[name](shift=shift, num_train_timesteps=num_train_timesteps)


def rescale_omega(omega_scale: float) -> float:
    """The official logistic squash of ``omega_scale`` into (0.9, 1.1); 0 -> 1.0, 10 -> 1.0462."""
    exponent = -0.1 * float(omega_scale)
    # exp() overflows past ~709; the official numpy code then yields inf -> exactly 0.9.
    return 0.9 + 0.2 / (1.0 + math.exp(min(exponent, 700.0)))


class FlowMatchScheduler:
    """Shared schedule; subclasses define ``step``."""

    name = ""

    def __init__(self, shift: float = 3.0, num_train_timesteps: int = 1000) -> None:
        import numpy as np
        import torch

        if shift <= 0:
            raise InvalidParams(f"scheduler shift must be positive, got {shift}", field="shift")
        if num_train_timesteps < 1:
            raise InvalidParams("num_train_timesteps must be at least 1", field="num_train_timesteps")
        self.shift = float(shift)
        self.num_train_timesteps = int(num_train_timesteps)
        train = np.linspace(1.0, num_train_timesteps, num_train_timesteps, dtype=np.float32)[::-1].copy()
        sigmas = torch.from_numpy(train) / num_train_timesteps
        sigmas = shift * sigmas / (1 + (shift - 1) * sigmas)
        self.sigma_max = sigmas[0].item()
        self.sigma_min = sigmas[-1].item()
        self.timesteps: torch.Tensor = sigmas * num_train_timesteps
        self.sigmas: torch.Tensor = sigmas
        self.num_inference_steps = 0
        self._index = 0

    def _base_schedule(self, num_steps: int, device: "str | torch.device | None") -> "torch.Tensor":
        import numpy as np
        import torch

        if int(num_steps) != num_steps or num_steps < 1:
            raise InvalidParams(f"inference steps must be a whole number >= 1, got {num_steps}", field="inference_steps")
        self.num_inference_steps = int(num_steps)
        t = np.linspace(self.sigma_max * self.num_train_timesteps, self.sigma_min * self.num_train_timesteps, int(num_steps))
        s = t / self.num_train_timesteps
        s = self.shift * s / (1 + (self.shift - 1) * s)
        self._index = 0
        return torch.from_numpy(s).to(dtype=torch.float32, device=device)

    def set_timesteps(self, num_steps: int, device: "str | torch.device | None" = None) -> None:
        import torch

        sigmas = self._base_schedule(num_steps, device)
        self.timesteps = sigmas * self.num_train_timesteps
        self.sigmas = torch.cat([sigmas, torch.zeros(1, device=sigmas.device)])

    @property
    def step_index(self) -> int:
        """How many ``step`` calls since ``set_timesteps``."""
        return self._index

    def _next_index(self) -> int:
        if self._index >= len(self.timesteps):
            raise RuntimeError(f"{self.name} scheduler stepped past its {len(self.timesteps)} timesteps")
        index = self._index
        self._index += 1
        return index

    def step(
        self,
        model_output: "torch.Tensor",
        timestep: "torch.Tensor | float",
        sample: "torch.Tensor",
        omega: float = 0.0,
        generator: "torch.Generator | None" = None,
    ) -> "torch.Tensor":
        raise NotImplementedError


def _mean_shifted(dx: "torch.Tensor", omega: float) -> "torch.Tensor":
    m = dx.mean()
    return (dx - m) * omega + m


class EulerScheduler(FlowMatchScheduler):
    name = "euler"

    def step(self, model_output, timestep, sample, omega=0.0, generator=None):
        import torch

        i = self._next_index()
        sample = sample.to(torch.float32)
        dx = (self.sigmas[i + 1] - self.sigmas[i]) * model_output
        return (sample + _mean_shifted(dx, rescale_omega(omega))).to(model_output.dtype)


class HeunScheduler(FlowMatchScheduler):
    """Heun's method: 2N-1 model calls for N steps (predictor/corrector pairs, last Euler)."""

    name = "heun"

    def set_timesteps(self, num_steps, device=None):
        import torch

        sigmas = self._base_schedule(num_steps, device)
        timesteps = sigmas * self.num_train_timesteps
        self.timesteps = torch.cat([timesteps[:1], timesteps[1:].repeat_interleave(2)])
        sigmas = torch.cat([sigmas, torch.zeros(1, device=sigmas.device)])
        self.sigmas = torch.cat([sigmas[:1], sigmas[1:-1].repeat_interleave(2), sigmas[-1:]])
        self._stored = None  # (derivative, dt, sample) between predictor and corrector

    @property
    def in_predictor_stage(self) -> bool:
        return getattr(self, "_stored", None) is None

    def step(self, model_output, timestep, sample, omega=0.0, generator=None):
        import torch

        i = self._next_index()
        sample = sample.to(torch.float32)
        if self.in_predictor_stage:
            sigma, sigma_next = self.sigmas[i], self.sigmas[i + 1]
            denoised = sample - model_output * sigma
            derivative = (sample - denoised) / sigma
            dt = sigma_next - sigma
            self._stored = (derivative, dt, sample)
        else:
            sigma_next = self.sigmas[i]
            denoised = sample - model_output * sigma_next
            derivative = (sample - denoised) / sigma_next
            first_derivative, dt, sample = self._stored
            derivative = 0.5 * (first_derivative + derivative)
            self._stored = None
        dx = derivative * dt
        return (sample + _mean_shifted(dx, rescale_omega(omega))).to(model_output.dtype)


class PingPongScheduler(FlowMatchScheduler):
    """Predict x0, then re-noise to the next sigma with fresh noise from ``generator``."""

    name = "pingpong"

    def step(self, model_output, timestep, sample, omega=0.0, generator=None):
        import torch

        i = self._next_index()
        sample = sample.to(torch.float32)
        sigma, sigma_next = self.sigmas[i], self.sigmas[i + 1]
        denoised = sample - sigma * model_output
        noise = torch.empty_like(sample).normal_(generator=generator)
        return ((1 - sigma_next) * denoised + sigma_next * noise).to(model_output.dtype)
