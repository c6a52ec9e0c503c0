"""Shared test fixtures: where ../shared lives, and a private cache dir per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """The project's shared folder: beside the clone in CI, overridable with LOFI_SHARED_DIR."""
    return Path(os.environ.get("LOFI_SHARED_DIR") or REPO_ROOT.parent / "shared")


def acestep_fixture_dir() -> Path:
    return shared_dir() / "fixtures" / "acestep-v1-tiny"


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
