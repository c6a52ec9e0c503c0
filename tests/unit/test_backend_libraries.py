"""A backend whose Python libraries are missing says so, so the hint is `:LofiInstall models`
first and not a download that could not load anyway."""

from __future__ import annotations

import importlib.util

import pytest

from lofi_daemon.backends.registry import MODEL_LIBRARIES, BackendRegistry
from lofi_daemon.models.store import ModelStore
from lofi_daemon.settings import Settings


@pytest.fixture
def without_model_libraries(monkeypatch):
    """This process as a fresh plugin venv without the `models` extra sees it."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name.split(".")[0] in MODEL_LIBRARIES else real(name, *args))


@pytest.mark.parametrize("backend", ["musicgen", "ace_step", "ace_step_15", "stable_audio_3"])
def test_a_model_backend_without_its_libraries_lists_them(tmp_path, without_model_libraries, backend):
    settings = Settings.load({"LOFI_CACHE_DIR": str(tmp_path / "cache"), "LOFI_CONFIG_DIR": str(tmp_path / "config")})
    registry = BackendRegistry(settings, ModelStore(settings.models_dir))
    assert "torch" in registry.describe(backend)["missing_libraries"]


def test_the_procedural_backend_needs_no_model_library(tmp_path, without_model_libraries):
    settings = Settings.load({"LOFI_CACHE_DIR": str(tmp_path / "cache"), "LOFI_CONFIG_DIR": str(tmp_path / "config")})
    registry = BackendRegistry(settings, ModelStore(settings.models_dir))
    assert registry.describe("procedural")["missing_libraries"] == []
