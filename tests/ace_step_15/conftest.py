"""Fixtures for the ACE-Step 1.5 tests: one tiny random model per session, in both layouts."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # tiny_acestep15 beside the tests

from tiny_acestep15 import save_diffusers, save_original, tiny_pipeline  # noqa: E402


@dataclass(frozen=True)
class TinyModel:
    diffusers: Path  # save_pretrained of the whole pipeline
    original: Path  # the upstream ACE-Step/Ace-Step1.5 layout, same weights


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> TinyModel:
    """The real-rate tiny model (48 kHz, 25 latents/s) saved both ways."""
    root = tmp_path_factory.mktemp("ace15-tiny")
    pipe = tiny_pipeline(rate="real")
    return TinyModel(save_diffusers(pipe, root / "diffusers"), save_original(pipe, root / "original"))


@pytest.fixture(autouse=True)
def _one_thread():
    """CI shares 2 cores between test processes; extra OpenMP threads only wait for them."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
