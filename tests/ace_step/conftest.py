"""Helpers for the ACE-Step tests: read the golden fixtures' manifest and compare tensors
against its tolerances, so each test reads like the manifest entry it checks."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from repo_paths import acestep_fixture_dir as _fixture_dir


def _manifest_at_collection() -> dict[str, Any] | None:
    """The manifest, read while tests are collected (to parametrize over its cases).

    When it is missing the single placeholder case fails through the ``acestep_fixture``
    fixture, which says where it looked.
    """
    path = _fixture_dir() / "manifest.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError:
        return None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "e2e_case" in metafunc.fixturenames:
        manifest = _manifest_at_collection()
        cases = list(manifest["cases"]) if manifest else ["<fixtures missing>"]
        metafunc.parametrize("e2e_case", cases)


@functools.lru_cache(maxsize=2)
def load_pipeline(checkpoint: Path) -> Any:
    """One float32 CPU pipeline per checkpoint for the whole session (loading is the slow part)."""
    from lofi_daemon.backends.ace_step.pipeline import AceStepPipeline

    return AceStepPipeline.from_checkpoint(checkpoint, device="cpu", dtype=torch.float32)


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


@pytest.fixture(scope="session")
def acestep_checkpoint() -> Path:
    """The fixture checkpoint folder, for module-scoped fixtures (e.g. one daemon per module)."""
    path = _fixture_dir() / "checkpoint"
    if not path.is_dir():
        pytest.fail(f"ACE-Step fixtures not found at {path} (set LOFI_SHARED_DIR)")
    return path


@pytest.fixture
def golden(acestep_fixture: Path) -> Golden:
    return Golden(acestep_fixture, json.loads((acestep_fixture / "manifest.json").read_text(encoding="utf-8")))


@pytest.fixture
def pipeline(golden: Golden) -> Any:
    return load_pipeline(golden.checkpoint)


@pytest.fixture
def official_call(golden: Golden) -> Any:
    """``official_call(case)``: our ``__call__`` arguments for a manifest case."""
    return lambda case: _official_call(golden, case)


def _official_call(golden: Golden, case: str) -> dict[str, Any]:
    """The case's effective official parameters under our argument names."""
    p = golden.case(case)["effective_call_parameters"]
    return dict(
        prompt=p["prompt"], duration=p["audio_duration"], infer_step=p["infer_step"], seed=p["manual_seeds"],
        scheduler_type=p["scheduler_type"], cfg_type=p["cfg_type"], guidance_scale=p["guidance_scale"],
        omega_scale=p["omega_scale"], guidance_interval=p["guidance_interval"],
        guidance_interval_decay=p["guidance_interval_decay"], min_guidance_scale=p["min_guidance_scale"],
        use_erg_tag=p["use_erg_tag"], use_erg_lyric=p["use_erg_lyric"], use_erg_diffusion=p["use_erg_diffusion"],
        lyrics=p["lyrics"],
    )


@pytest.fixture(autouse=True)
def _one_thread():
    """The references were computed with 1 torch thread; other helpers share the CPU."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
