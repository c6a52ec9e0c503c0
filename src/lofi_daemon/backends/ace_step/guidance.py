"""Classifier-free guidance as ACE-Step v1 does it: APG (default) and plain CFG.

For the pipeline (stable names):

    buffer = MomentumBuffer()                      # one per generation, shared by guided steps
    v = apg_forward(pred_cond, pred_uncond, guidance_scale, buffer)
    v = cfg_forward(pred_cond, pred_uncond, guidance_scale)
    start, end = guidance_window(num_steps, guidance_interval)     # guided iff start <= i < end
    g_i = guidance_scale_at(i, start, end, guidance_scale, min_guidance_scale, decay)

APG ("adaptive projected guidance"): the difference ``cond - uncond`` is smoothed by a
momentum buffer (``running = diff + momentum * running``, momentum -0.75, updated only on
guided steps), clipped to an L2 norm of 2.5 per batch item and channel (over the 16 x
frames plane), and only its component *orthogonal* to ``cond`` is applied:
``cond + (g - 1) * orth``. The projection runs in float64 like the official code (on the
CPU for MPS, which has no float64).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import torch

APG_DIMS = (-1, -2)


class MomentumBuffer:
    """Running average of guidance differences across the guided steps of one generation."""

    def __init__(self, momentum: float = -0.75) -> None:
        self.momentum = momentum
        self.running_average: "torch.Tensor | None" = None

    def update(self, value: "torch.Tensor") -> "torch.Tensor":
        if self.running_average is None:  # the official buffer starts at 0: value + momentum * 0
            self.running_average = value
        else:
            self.running_average = value + self.momentum * self.running_average
        return self.running_average


def _project(v0: "torch.Tensor", v1: "torch.Tensor", dims: Sequence[int]) -> tuple["torch.Tensor", "torch.Tensor"]:
    """(parallel, orthogonal) parts of ``v0`` relative to ``v1``, computed in float64."""
    import torch.nn.functional as F

    dtype, device = v0.dtype, v0.device
    if device.type == "mps":
        v0, v1 = v0.cpu(), v1.cpu()
    v0, v1 = v0.double(), v1.double()
    v1 = F.normalize(v1, dim=tuple(dims))
    parallel = (v0 * v1).sum(dim=tuple(dims), keepdim=True) * v1
    orthogonal = v0 - parallel
    return parallel.to(dtype).to(device), orthogonal.to(dtype).to(device)


def apg_forward(
    pred_cond: "torch.Tensor",
    pred_uncond: "torch.Tensor",
    guidance_scale: float,
    momentum_buffer: MomentumBuffer | None = None,
    eta: float = 0.0,
    norm_threshold: float = 2.5,
    dims: Sequence[int] = APG_DIMS,
) -> "torch.Tensor":
    """Guided velocity from the conditional and unconditional predictions (``[B, C, H, W]``)."""
    import torch

    diff = pred_cond - pred_uncond
    if momentum_buffer is not None:
        diff = momentum_buffer.update(diff)
    if norm_threshold > 0:
        norm = diff.norm(p=2, dim=tuple(dims), keepdim=True)
        diff = diff * torch.minimum(torch.ones_like(diff), norm_threshold / norm)
    parallel, orthogonal = _project(diff, pred_cond, dims)
    return pred_cond + (guidance_scale - 1) * (orthogonal + eta * parallel)


def cfg_forward(pred_cond: "torch.Tensor", pred_uncond: "torch.Tensor", guidance_scale: float) -> "torch.Tensor":
    """Plain classifier-free guidance: ``uncond + g * (cond - uncond)``."""
    return pred_uncond + guidance_scale * (pred_cond - pred_uncond)


def guidance_window(num_steps: int, guidance_interval: float) -> tuple[int, int]:
    """``(start, end)``: loop index ``i`` is guided iff ``start <= i < end``.

    Computed from the *requested* step count even for heun, whose loop is 2N-1 long (the
    official code does the same, so heun is guided at indices 2..5 of 15 for N=8).
    """
    start = int(num_steps * ((1 - guidance_interval) / 2))
    end = int(num_steps * (guidance_interval / 2 + 0.5))
    return start, end


def guidance_scale_at(
    index: int, start: int, end: int, guidance_scale: float, min_guidance_scale: float, decay: float
) -> float:
    """The guidance scale at guided loop index ``index`` with the official linear decay.

    With ``decay > 0`` it falls from ``guidance_scale`` towards ``min_guidance_scale`` across
    the window. The official formula divides by ``end - start - 1``, which is 0 for a
    one-step window; that step then keeps the full scale here instead of crashing.
    """
    if decay <= 0:
        return guidance_scale
    span = end - start - 1
    if span <= 0:
        return guidance_scale
    progress = (index - start) / span
    return guidance_scale - (guidance_scale - min_guidance_scale) * progress * decay
