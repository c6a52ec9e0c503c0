"""Shared test fixtures: where ../shared lives, and a private cache dir per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from repo_paths import acestep_fixture_dir


@pytest.fixture
def acestep_fixture() -> Path:
    path = acestep_fixture_dir()
    if not (path / "manifest.json").is_file():
        # CI always has ../shared; a missing folder is a broken checkout, not a reason to skip.
        pytest.fail(f"ACE-Step fixtures not found at {path} (set LOFI_SHARED_DIR)")
    return path


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    """A private LOFI_CACHE_DIR / LOFI_CONFIG_DIR so no test touches the user's cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("LOFI_CACHE_DIR", str(cache))
    monkeypatch.setenv("LOFI_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache
