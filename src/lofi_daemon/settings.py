"""Where things live and what the user prefers.

Cache dir: platformdirs' user cache dir for ``lofi.nvim`` (``~/.cache/lofi.nvim`` on Linux),
or ``LOFI_CACHE_DIR``. Config: ``config.json`` in the user config dir, or ``LOFI_CONFIG_DIR``.
The config file is small JSON that the daemon rewrites when the user picks a new default
backend, so a restart keeps the choice.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .device import DEVICE_CHOICES, DTYPE_CHOICES, DevicePlan, valid_threads

log = logging.getLogger(__name__)

APP_NAME = "lofi.nvim"


@dataclass
class Preferences:
    """What persists in config.json."""

    default_backend: str = "procedural"
    device: str = "auto"
    dtype: str = "auto"
    low_vram: str = "auto"
    musicgen_model: str = "facebook/musicgen-small"
    output_format: str = "wav"
    cpu_threads: int | str = "auto"  # torch compute threads on the CPU: "auto" (physical cores) or a count
    extra: dict[str, Any] = field(default_factory=dict)  # keys we do not know survive a rewrite

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "Preferences":
        known = {f.name for f in fields(cls)} - {"extra"}
        prefs = cls(**{k: v for k, v in raw.items() if k in known})
        prefs.extra = {k: v for k, v in raw.items() if k not in known}
        if prefs.device not in DEVICE_CHOICES:
            log.warning("config: device %r is not one of %s; using auto", prefs.device, DEVICE_CHOICES)
            prefs.device = "auto"
        if prefs.dtype not in DTYPE_CHOICES:
            log.warning("config: dtype %r is not one of %s; using auto", prefs.dtype, DTYPE_CHOICES)
            prefs.dtype = "auto"
        if not valid_threads(prefs.cpu_threads):
            log.warning("config: cpu_threads %r is not \"auto\" or a whole number >= 1; using auto", prefs.cpu_threads)
            prefs.cpu_threads = "auto"
        return prefs

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(out.pop("extra"))
        return out


@dataclass
class Settings:
    cache_dir: Path
    config_dir: Path
    prefs: Preferences = field(default_factory=Preferences)

    @property
    def models_dir(self) -> Path:
        return self.cache_dir / "models"

    @property
    def tracks_dir(self) -> Path:
        return self.cache_dir / "tracks"

    @property
    def logs_dir(self) -> Path:
        return self.cache_dir / "logs"

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.json"

    @property
    def device_plan(self) -> DevicePlan:
        device = os.environ.get("LOFI_DEVICE", self.prefs.device)
        return DevicePlan(preference=device, dtype=self.prefs.dtype, low_vram=self.prefs.low_vram,
                          threads=self.prefs.cpu_threads)

    @classmethod
    def load(cls, env: dict[str, str] | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        import platformdirs

        cache_dir = Path(env.get("LOFI_CACHE_DIR") or platformdirs.user_cache_dir(APP_NAME, appauthor=False))
        config_dir = Path(env.get("LOFI_CONFIG_DIR") or platformdirs.user_config_dir(APP_NAME, appauthor=False))
        settings = cls(cache_dir=cache_dir, config_dir=config_dir)
        settings.prefs = settings._read_prefs()
        return settings

    def ensure_dirs(self) -> None:
        for d in (self.models_dir, self.tracks_dir, self.logs_dir):
            d.mkdir(parents=True, exist_ok=True)

    def _read_prefs(self) -> Preferences:
        try:
            raw = json.loads(self.config_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return Preferences()
        except (OSError, ValueError) as exc:
            log.warning("config: cannot read %s (%s); using defaults", self.config_file, exc)
            return Preferences()
        if not isinstance(raw, dict):
            log.warning("config: %s is not a JSON object; using defaults", self.config_file)
            return Preferences()
        return Preferences.from_dict(raw)

    def save_prefs(self) -> None:
        """Write config.json atomically."""
        self.config_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.config_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.prefs.to_dict(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.config_file)
