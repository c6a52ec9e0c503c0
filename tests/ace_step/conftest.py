"""Helpers for the ACE-Step tests: read the golden fixtures' manifest and compare tensors
against its tolerances, so each test reads like the manifest entry it checks."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")


@dataclass
class Golden:
    """The fixture folder, its manifest, and tolerance-aware comparisons."""

    root: Path
    manifest: dict[str, Any]

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoint"

    def case(self, name: str) -> dict[str, Any]:
        return self.manifest["cases"][name]

    def file_entry(self, key: str) -> dict[str, Any]:
        return self.manifest["files"][key]

    def tensors(self, key: str) -> dict[str, "torch.Tensor"]:
        from safetensors.torch import load_file

        return load_file(str(self.root / self.file_entry(key)["path"]))

    def tolerance(self, key: str, tensor: str) -> float | str:
        return self.file_entry(key)["tensors"][tensor]["tolerance_max_abs"]

    def check(self, key: str, tensor: str, ours: "torch.Tensor", reference: "torch.Tensor") -> float:
        """Assert ``ours`` equals ``reference`` within the manifest's tolerance; return max |diff|."""
        tol = self.tolerance(key, tensor)
        ours = ours.detach().cpu()
        assert tuple(ours.shape) == tuple(reference.shape), (
            f"{key}/{tensor}: shape {tuple(ours.shape)} != reference {tuple(reference.shape)}"
        )
        if tol == "exact":
            assert torch.equal(ours.to(reference.dtype), reference), f"{key}/{tensor} must match exactly"
            return 0.0
        diff = (ours.double() - reference.double()).abs().max().item()
        assert diff <= float(tol), f"{key}/{tensor}: max |diff| {diff:.3g} > tolerance {tol}"
        return diff


@pytest.fixture
def golden(acestep_fixture: Path) -> Golden:
    return Golden(acestep_fixture, json.loads((acestep_fixture / "manifest.json").read_text(encoding="utf-8")))


@pytest.fixture(autouse=True)
def _one_thread():
    """The references were computed with 1 torch thread; other helpers share the CPU."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
