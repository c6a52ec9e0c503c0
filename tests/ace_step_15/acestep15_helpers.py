"""Helpers for the ACE-Step 1.5 tests (a module of its own: ``conftest`` names are shared across folders)."""

from __future__ import annotations

from pathlib import Path


def make_backend(cache: Path, **prefs_extra):
    """An ``ace_step_15`` backend over ``cache`` (see ``installed_cache``)."""
    from lofi_daemon.backends.ace_step_15.backend import AceStep15Backend
    from lofi_daemon.models.store import ModelStore
    from lofi_daemon.settings import Settings

    settings = Settings(cache_dir=cache, config_dir=cache / "config")
    settings.prefs.extra.update(prefs_extra)
    return AceStep15Backend(settings, ModelStore(settings.models_dir))
