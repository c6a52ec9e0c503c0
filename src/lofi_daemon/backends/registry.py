"""Which backends exist, which is the default, which model is loaded.

Backend classes are imported on first use by dotted path, so the daemon starts without
importing any model code. Only one model is held in memory at a time: loading one unloads
the others. ``load`` / ``unload`` run in the job worker thread.
"""

from __future__ import annotations

import importlib
import logging
import threading
from typing import Any, Callable

from ..errors import BackendNotInstalled, InvalidBackend, LofiError
from .base import Backend

log = logging.getLogger(__name__)

BACKEND_CLASSES: dict[str, str] = {
    "procedural": "lofi_daemon.backends.procedural:ProceduralBackend",
    "musicgen": "lofi_daemon.backends.musicgen:MusicgenBackend",
    "ace_step": "lofi_daemon.backends.ace_step.backend:AceStepBackend",
    "ace_step_15": "lofi_daemon.backends.ace_step_15.backend:AceStep15Backend",
    "stable_audio_3": "lofi_daemon.backends.stable_audio_3.backend:StableAudio3Backend",
}
ALIASES = {"ace-step": "ace_step", "acestep": "ace_step", "music-gen": "musicgen",
           "ace-step-1.5": "ace_step_15", "ace_step_1.5": "ace_step_15", "ace-step-15": "ace_step_15",
           "acestep15": "ace_step_15",
           "sa3": "stable_audio_3", "stable-audio-3": "stable_audio_3"}
FALLBACK = "procedural"
MODEL_LIBRARIES = {"torch", "transformers", "diffusers", "safetensors", "tokenizers", "sentencepiece"}


def resolve_alias(name: str) -> str:
    """The backend name a user's spelling means ("ace-step" -> "ace_step"); not validated."""
    key = name.strip().lower()
    return ALIASES.get(key, key)


class BackendRegistry:
    def __init__(self, settings: Any, store: Any, *, classes: dict[str, str] | None = None,
                 on_status: Callable[[str, str], None] = lambda name, status: None) -> None:
        self._settings = settings
        self._store = store
        self._classes = dict(BACKEND_CLASSES if classes is None else classes)
        self._instances: dict[str, Backend] = {}
        self._transient: dict[str, str] = {}  # downloading / loading / error, over what is on disk
        self._lock = threading.Lock()
        self._on_status = on_status
        #: What the loaded model holds (backend, weight_bytes, device, low_vram); None: nothing.
        #: Measured once after the load, so status calls never walk the tensors.
        self.held: dict[str, Any] | None = None
        preferred = settings.prefs.default_backend
        self.default = self._initial_default(preferred)

    # ----- names ------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self._classes)

    def canonical(self, name: str) -> str:
        key = resolve_alias(name)
        if key not in self._classes:
            raise InvalidBackend(f"unknown backend {name!r}", available=self.names,
                                 hint=f"Use one of: {', '.join(self.names)}.")
        return key

    def get(self, name: str) -> Backend:
        key = self.canonical(name)
        with self._lock:
            backend = self._instances.get(key)
            if backend is None:
                backend = self._instances[key] = self._construct(key)
            return backend

    def _construct(self, key: str) -> Backend:
        module_name, _, class_name = self._classes[key].partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] in MODEL_LIBRARIES:
                raise BackendNotInstalled(
                    f"backend {key} needs {exc.name}, which is not installed",
                    hint="Install the model extras: pip install 'lofi-nvim[models]' (or :LofiInstall models).",
                    backend=key, missing=exc.name) from exc
            raise
        return getattr(module, class_name)(self._settings, self._store)

    def _initial_default(self, preferred: str) -> str:
        try:
            key = self.canonical(preferred)
            if self.get(key).is_installed():
                return key
            log.warning("preferred backend %s is not installed; using %s", key, FALLBACK)
        except LofiError as exc:
            log.warning("preferred backend %r unusable (%s); using %s", preferred, exc.message, FALLBACK)
        except Exception:
            log.exception("backend %r failed to initialise; using %s", preferred, FALLBACK)
        return FALLBACK

    # ----- state ------------------------------------------------------------------------------
    def status(self, name: str) -> str:
        key = self.canonical(name)
        if key in self._transient:
            return self._transient[key]
        backend = self.get(key)
        if backend.loaded:
            return "ready"
        return "installed" if backend.is_installed() else "not_installed"

    def set_transient(self, name: str, status: str | None) -> None:
        key = self.canonical(name)
        if status is None:
            self._transient.pop(key, None)
        else:
            self._transient[key] = status
        self._on_status(key, self.status(key))

    def describe(self, name: str) -> dict[str, Any]:
        key = self.canonical(name)
        try:
            backend = self.get(key)
            caps = backend.capabilities()
        except Exception as exc:  # a broken optional backend must not hide the others
            log.exception("backend %s is unusable", key)
            return {"name": key, "status": "error", "error": f"{type(exc).__name__}: {exc}",
                    "hint": "Install the model extras: pip install 'lofi-nvim[models]'."}
        return {
            "name": key,
            "status": self.status(key),
            "description": caps.description,
            "min_duration_sec": caps.min_duration_sec,
            "max_duration_sec": caps.max_duration_sec,
            "sample_rate": caps.sample_rate,
            "parameters": [p.describe() for p in caps.parameters],
            "size_bytes": backend.size_bytes(),
            "model_version": backend.model_version,
            "licence": backend.licence,  # "" when there are no terms to accept
            # Python packages the backend needs and lacks: `:LofiInstall models` comes first.
            "missing_libraries": backend.missing_libraries(),
            # What the radio can do with it: flow (continue_from) and play while it decodes.
            "continues_audio": caps.continues_audio,
            "decodes_in_windows": caps.decodes_in_windows,
        }

    # ----- models in memory (worker thread) ---------------------------------------------------
    def ensure_loaded(self, name: str, device_plan: Any) -> Backend:
        key = self.canonical(name)
        backend = self.get(key)
        if backend.loaded:
            return backend
        if not backend.is_installed():
            raise BackendNotInstalled(f"backend {key} is not installed",
                                      hint=f"Run :LofiSetup {key.replace('_', '-')} (or `lofi setup {key}`).",
                                      backend=key)
        self.unload_all(except_=key)
        self.set_transient(key, "loading")
        try:
            backend.load(device_plan)
        except Exception:
            self.set_transient(key, "error")
            raise
        held = backend.held_memory()
        self.held = {"backend": key, **held} if held else None
        self.set_transient(key, None)
        return backend

    def loaded_name(self) -> str | None:
        """The backend whose weights are in memory, if any."""
        for key, backend in list(self._instances.items()):
            if backend.has_weights and backend.loaded:
                return key
        return None

    def unload_all(self, except_: str | None = None) -> list[str]:
        """Unload every model but ``except_``; returns the names unloaded."""
        from ..memory import release_freed_memory

        unloaded = []
        for key, backend in list(self._instances.items()):
            if key != except_ and backend.has_weights and backend.loaded:
                log.info("unloading %s", key)
                backend.unload()
                unloaded.append(key)
                if self.held is not None and self.held["backend"] == key:
                    self.held = None
        if unloaded:
            release_freed_memory()  # without it glibc keeps freed heap pages and RSS stays up
        for key in unloaded:  # after the release: a client that hears "installed" sees the memory back
            self._on_status(key, self.status(key))
        return unloaded
