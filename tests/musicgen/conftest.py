"""Fixtures for the MusicGen tests: tiny random checkpoints, installed like a download.

The checkpoints are built once per session (a few seconds) and copied into a fresh
store per test or per module, so tests that damage files never affect each other.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from musicgen_helpers import make_backend, tokenizer_dir
from tiny_musicgen import build_tiny_musicgen


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return build_tiny_musicgen(tmp_path_factory.mktemp("musicgen-tiny"), tokenizer_dir())


@pytest.fixture(scope="session")
def tiny_stereo_checkpoint(tmp_path_factory) -> Path:
    return build_tiny_musicgen(tmp_path_factory.mktemp("musicgen-stereo-tiny"), tokenizer_dir(), stereo=True)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Toy-sized matrices run fastest on one thread, and on a CPU shared with other jobs
    two spinning OpenMP threads can make a 1 s generation take 30 s."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def loaded_backend(tmp_path_factory, tiny_checkpoint):
    """One loaded tiny model shared by a module's generation tests (they do not change it)."""
    cache = tmp_path_factory.mktemp("musicgen-cache")
    backend = make_backend(cache, tiny_checkpoint)
    backend.load(backend._settings.device_plan)
    yield backend
    backend.unload()
