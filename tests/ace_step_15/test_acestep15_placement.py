"""Low-VRAM placement: each component visits the execution device in the pipeline's order.

There is no GPU here, so the "GPU" is the CPU too: what this shows is the sequencing (each
component is brought exactly when it runs, the previous one sent back) and that the pinned
pipeline gives the same audio; the memory saving itself needs a CUDA run (docs/ace_step_15.md).
"""

from __future__ import annotations

import torch

from lofi_daemon.cancel import CancelToken
from lofi_daemon.backends.ace_step_15.components import ComponentPaths, load_pipeline
from lofi_daemon.backends.ace_step_15.decode import decode
from lofi_daemon.backends.ace_step_15.placement import OneAtATime, pinned_pipeline_class
from lofi_daemon.backends.ace_step_15.sampling import SamplingRequest, sample_latents

HINT = "Run :LofiSetup ace-step-1.5 again."


def _run(pipe, placement=None):
    request = SamplingRequest(prompt="rain on a window", duration_sec=2.0, seed=3, steps=3, guidance_scale=1.0,
                              shift=3.0, cfg_interval_start=0.0, cfg_interval_end=1.0, lyrics="[Instrumental]",
                              bpm=None, keyscale=None, timesignature=None)
    latents = sample_latents(pipe, request, "cpu", report=lambda *a: None, cancel=CancelToken())
    if placement is not None:
        placement.bring("vae")
    return decode(pipe.vae, latents)


def test_components_visit_the_device_one_at_a_time_in_the_pipelines_order(tiny_model):
    paths = ComponentPaths.diffusers(tiny_model.diffusers)
    plain = _run(load_pipeline(paths, dtype=torch.float32, hint=HINT))
    pipe = load_pipeline(paths, dtype=torch.float32, hint=HINT, pipeline_class=pinned_pipeline_class("cpu"))
    moves: list[str] = []
    placement = OneAtATime(pipe, "cpu", on_move=moves.append)
    placed = _run(pipe, placement)
    # The transformer runs 3 times but moves once; nothing moves twice.
    assert moves == ["text_encoder", "condition_encoder", "transformer", "vae"]
    assert torch.equal(placed, plain)
    placement.remove()
    _run(pipe)
    assert moves == ["text_encoder", "condition_encoder", "transformer", "vae"]  # hooks gone
