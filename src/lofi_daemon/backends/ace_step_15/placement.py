"""Low-VRAM placement: every component lives on the CPU and visits the GPU only while it runs.

The pipeline calls its components in a fixed order (text encoder, condition encoder, then
the transformer once per step; we decode with the VAE afterwards). A forward pre-hook on
each moves it to the GPU and sends the one there before back to the CPU, so the GPU holds
one component's weights plus activations (the 2B DiT: ~3.2 GB in bf16) instead of all of
them. ``accelerate``'s offload hooks would do the same, but it is not a dependency here.

The pipeline makes its inputs on its "execution device", which diffusers infers from where
the modules are (the CPU here); ``pinned_pipeline_class`` tells it the GPU instead.
"""

from __future__ import annotations

from typing import Any, Callable

COMPONENTS_IN_ORDER = ("text_encoder", "condition_encoder", "transformer", "vae")


class OneAtATime:
    """Keeps at most one of ``pipe``'s components on ``device``."""

    def __init__(self, pipe: Any, device: str, on_move: Callable[[str], None] | None = None) -> None:
        self.pipe = pipe
        self.device = device
        self.resident: str | None = None
        self._on_move = on_move
        self._handles = [getattr(pipe, name).register_forward_pre_hook(self._hook(name))
                         for name in COMPONENTS_IN_ORDER if name != "vae"]  # we call the VAE ourselves

    def _hook(self, name: str) -> Callable[..., None]:
        def visit(_module: Any, _args: Any) -> None:
            self.bring(name)
        return visit

    def bring(self, name: str) -> None:
        if self.resident == name:
            return
        import torch

        if self.resident is not None:
            getattr(self.pipe, self.resident).to("cpu")
        getattr(self.pipe, name).to(self.device)
        self.resident = name
        if self.device == "cuda":
            torch.cuda.empty_cache()
        if self._on_move is not None:
            self._on_move(name)

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def pinned_pipeline_class(device: str) -> type:
    """The extending ``AceStepPipeline`` whose inputs are made on ``device`` wherever its modules are."""
    import torch

    from .extend import extending_pipeline_class

    class PinnedDeviceAceStepPipeline(extending_pipeline_class()):  # type: ignore[misc]
        @property
        def _execution_device(self) -> torch.device:
            return torch.device(device)

    return PinnedDeviceAceStepPipeline
