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


class Recorder:
    """A Progress sink that keeps everything it is told (``on_update`` hears each update too)."""

    def __init__(self, on_update=None):
        self.phases: list[str] = []
        self.updates: list[tuple[str, int, int]] = []
        self._on_update = on_update

    def plan(self, phases):
        self.phases = [name for name, _ in phases]

    def update(self, phase, current, total):
        self.updates.append((phase, current, total))
        if self._on_update:
            self._on_update(phase, current, total)
