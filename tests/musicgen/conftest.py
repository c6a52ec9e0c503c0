"""Fixtures for the MusicGen tests: tiny random checkpoints, installed like a download.

The checkpoints are built once per session (a few seconds) and copied into a fresh
store per test or per module, so tests that damage files never affect each other.
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")

from lofi_daemon.backends.musicgen import MusicgenBackend  # noqa: E402
from lofi_daemon.models.store import ModelStore  # noqa: E402
from lofi_daemon.settings import Preferences, Settings  # noqa: E402
from tiny_musicgen import build_tiny_musicgen, install_into_store  # noqa: E402

STEREO_MODEL = "facebook/musicgen-stereo-small"


def _shared_dir() -> Path:
    # tests/conftest.py owns the rule for finding ../shared; load it by path because every
    # test folder has a module named "conftest".
    spec = importlib.util.spec_from_file_location("_lofi_root_conftest", Path(__file__).parents[1] / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.shared_dir()


def tokenizer_dir() -> Path:
    path = _shared_dir() / "fixtures" / "acestep-v1-tiny" / "checkpoint" / "umt5-base"
    if not (path / "tokenizer.json").is_file():
        pytest.fail(f"tiny T5 tokenizer not found at {path} (set LOFI_SHARED_DIR)")
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return build_tiny_musicgen(tmp_path_factory.mktemp("musicgen-tiny"), tokenizer_dir())


@pytest.fixture(scope="session")
def tiny_stereo_checkpoint(tmp_path_factory) -> Path:
    return build_tiny_musicgen(tmp_path_factory.mktemp("musicgen-stereo-tiny"), tokenizer_dir(), stereo=True)


def make_backend(cache: Path, checkpoint: Path | None, *, model: str = "facebook/musicgen-small",
                 device: str = "cpu", dtype: str = "auto") -> MusicgenBackend:
    """A backend over a fresh store in ``cache``, with ``checkpoint`` installed (if given)."""
    settings = Settings(cache_dir=cache, config_dir=cache / "config",
                        prefs=Preferences(device=device, dtype=dtype, musicgen_model=model))
    store = ModelStore(settings.models_dir)
    backend = MusicgenBackend(settings, store)
    if checkpoint is not None:
        install_into_store(store, backend.manifest, checkpoint)
    return backend


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


@dataclass
class RecordingProgress:
    """A progress sink like the job layer's: keeps the plan and every update, timed."""

    phases: list[tuple[str, float]] = field(default_factory=list)
    updates: list[tuple[str, int, int]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    on_update: Any = None

    def plan(self, phases) -> None:
        self.phases = [(name, float(weight)) for name, weight in phases]

    def update(self, phase: str, current: int, total: int) -> None:
        self.updates.append((phase, current, total))
        self.times.append(time.perf_counter())
        if self.on_update is not None:
            self.on_update(phase, current, total)

    def percents(self) -> list[float]:
        """The weighted percent after each update, as the job layer computes it."""
        total = sum(w for _, w in self.phases)
        out = []
        for phase, current, n in self.updates:
            names = [name for name, _ in self.phases]
            before = sum(w for _, w in self.phases[: names.index(phase)])
            weight = dict(self.phases)[phase]
            out.append(100.0 * (before + weight * current / n) / total)
        return out

    def tokens(self) -> list[int]:
        return [current for phase, current, _ in self.updates if phase == "tokens"]
