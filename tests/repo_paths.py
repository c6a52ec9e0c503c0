"""Paths every test may need: the repo root and the shared folder beside it."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """The project's shared folder: beside the clone in CI, overridable with LOFI_SHARED_DIR."""
    return Path(os.environ.get("LOFI_SHARED_DIR") or REPO_ROOT.parent / "shared")


def acestep_fixture_dir() -> Path:
    return shared_dir() / "fixtures" / "acestep-v1-tiny"
