"""Helpers the MusicGen tests import by name (a conftest cannot be imported reliably:
every test folder has a module called conftest)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lofi_daemon.backends.musicgen import MusicgenBackend
from lofi_daemon.models.store import ModelStore
from lofi_daemon.settings import Preferences, Settings
from repo_paths import acestep_fixture_dir
from tiny_musicgen import install_into_store

STEREO_MODEL = "facebook/musicgen-stereo-small"


def tokenizer_dir() -> Path:
    """The tiny T5 SentencePiece tokenizer of the ACE-Step fixtures, reused for MusicGen."""
    path = acestep_fixture_dir() / "checkpoint" / "umt5-base"
    if not (path / "tokenizer.json").is_file():
        pytest.fail(f"tiny T5 tokenizer not found at {path} (set LOFI_SHARED_DIR)")
    return path


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
