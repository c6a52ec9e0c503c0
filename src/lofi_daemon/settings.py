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
from typing import Any, Callable

from .device import DEVICE_CHOICES, DTYPE_CHOICES, DevicePlan, valid_threads
from .files import DIR_MODE, read_regular_file, remove_dead_temps, write_private_atomic

log = logging.getLogger(__name__)

APP_NAME = "lofi.nvim"


OUTPUT_FORMATS = ("wav", "flac", "ogg")
CHOICES: dict[str, tuple[str, ...]] = {
    "device": DEVICE_CHOICES,
    "dtype": DTYPE_CHOICES,
    "low_vram": ("auto", "on", "off"),
    "output_format": OUTPUT_FORMATS,
}
# Keys other modules read from ``extra``: what type each must have.
EXTRA_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "ace_step_dir": (lambda v: isinstance(v, str) and 0 < len(v) < 4096, "a folder path (a string)"),
    "ace_step_compile": (lambda v: isinstance(v, bool) or v == "always", 'true, false or "always"'),
    # The remote generator (docs/remote.md): an argv list, never a shell line.
    "generator": (lambda v: _is_argv(v), "a non-empty list of strings (a command and its arguments)"),
    "generator_backends": (lambda v: isinstance(v, list) and all(isinstance(x, str) and x for x in v),
                           "a list of backend names"),
}
MAX_CONFIG_BYTES = 1 << 20
DEFAULT_IDLE_UNLOAD_SEC = 300.0
IDLE_UNLOAD_ENV = "LOFI_IDLE_UNLOAD_SEC"
MAX_IDLE_UNLOAD_SEC = 10 * 365 * 86400.0  # call_later needs a finite delay; 0 already means never


def valid_idle_unload_sec(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and 0 <= value <= MAX_IDLE_UNLOAD_SEC)


def _is_argv(value: Any) -> bool:
    return (isinstance(value, list) and 0 < len(value) <= 256
            and all(isinstance(x, str) and x and len(x) < 4096 and "\0" not in x for x in value))


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, (dict, list)) else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


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
    idle_unload_sec: float = DEFAULT_IDLE_UNLOAD_SEC  # unload the model after this long unused (0: never)
    extra: dict[str, Any] = field(default_factory=dict)  # keys we do not know survive a rewrite

    @classmethod
    def from_dict(cls, raw: dict[str, Any], problems: list[str] | None = None) -> "Preferences":
        """Preferences from parsed config.json; a bad value is replaced by its default and
        named in ``problems`` (the app logs them), so one typo never stops the daemon."""
        problems = [] if problems is None else problems
        prefs = cls()
        known = {f.name for f in fields(cls)} - {"extra"}
        for key in sorted(known & set(raw)):
            value, allowed = raw[key], CHOICES.get(key)
            default = getattr(prefs, key)
            if key == "cpu_threads":  # a preference that may be a number
                if valid_threads(value):
                    prefs.cpu_threads = value
                else:
                    problems.append(f'config: cpu_threads must be "auto" or a whole number >= 1, got {_show(value)}; using {default!r}')
            elif key == "idle_unload_sec":
                if valid_idle_unload_sec(value):
                    prefs.idle_unload_sec = float(value)
                else:
                    problems.append(f"config: idle_unload_sec must be a number of seconds >= 0, got {_show(value)}; "
                                    f"using {default!r}")
            elif not isinstance(value, str) or not value or len(value) > 256:
                problems.append(f"config: {key} must be a string, got {_show(value)}; using {default!r}")
            elif allowed is not None and value not in allowed:
                problems.append(f"config: {key} {value!r} is not one of {', '.join(allowed)}; using {default!r}")
            else:
                setattr(prefs, key, value)
        for key in sorted(set(raw) - known):
            check = EXTRA_CHECKS.get(key)
            if check is not None and not check[0](raw[key]):
                problems.append(f"config: {key} must be {check[1]}, got {_show(raw[key])}; ignoring it")
                continue
            prefs.extra[key] = raw[key]
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
    problems: list[str] = field(default_factory=list)  # what was wrong in the env or config
    env_idle_unload_sec: float | None = None  # LOFI_IDLE_UNLOAD_SEC, over config.json

    @property
    def idle_unload_sec(self) -> float:
        """Seconds a loaded model may stay unused before the daemon unloads it (0: never)."""
        if self.env_idle_unload_sec is not None:
            return self.env_idle_unload_sec
        return self.prefs.idle_unload_sec

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

    def generator(self, env: dict[str, str] | None = None) -> tuple[list[str] | None, list[str] | None]:
        """The remote generator's argv and the backends sent to it (None: every backend but
        procedural): ``LOFI_GENERATOR`` (a JSON list, or words split like a shell would, with no
        shell run) and ``LOFI_GENERATOR_BACKENDS`` (comma-separated) win over config.json."""
        env = os.environ if env is None else env
        argv = self.prefs.extra.get("generator")
        backends = self.prefs.extra.get("generator_backends")
        raw = env.get("LOFI_GENERATOR", "").strip()
        if raw:
            import shlex

            try:
                parsed = json.loads(raw) if raw.startswith("[") else shlex.split(raw)
            except ValueError as exc:
                log.warning("LOFI_GENERATOR is not a JSON list or a command line (%s); ignoring it", exc)
            else:
                if _is_argv(parsed):
                    argv = parsed
                else:
                    log.warning("LOFI_GENERATOR must be a non-empty list of strings; ignoring it")
        raw = env.get("LOFI_GENERATOR_BACKENDS", "").strip()
        if raw:
            backends = [name.strip() for name in raw.split(",") if name.strip()]
        return (list(argv) if argv else None), (list(backends) if backends is not None else None)

    @classmethod
    def load(cls, env: dict[str, str] | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        import platformdirs

        problems: list[str] = []
        cache_dir = _absolute_dir(env, "LOFI_CACHE_DIR", problems) or Path(
            platformdirs.user_cache_dir(APP_NAME, appauthor=False))
        config_dir = _absolute_dir(env, "LOFI_CONFIG_DIR", problems) or Path(
            platformdirs.user_config_dir(APP_NAME, appauthor=False))
        settings = cls(cache_dir=cache_dir, config_dir=config_dir)
        settings.prefs = settings._read_prefs(problems)
        settings.env_idle_unload_sec = _idle_unload_from_env(env, problems)
        _check_memory_limit_env(env, problems)
        settings.problems = problems
        return settings

    def ensure_dirs(self) -> None:
        """Create the folders, private to the user (0700): prompts and tracks are their own."""
        for d in (self.cache_dir, self.models_dir, self.tracks_dir, self.logs_dir):
            d.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        for d in (self.cache_dir, self.config_dir):
            if d.is_dir():
                make_private(d)

    def _read_prefs(self, problems: list[str]) -> Preferences:
        try:
            raw = json.loads(read_regular_file(self.config_file, MAX_CONFIG_BYTES))
        except FileNotFoundError:
            return Preferences()
        except (OSError, ValueError, RecursionError) as exc:  # RecursionError: absurd nesting
            problems.append(f"config: cannot read {self.config_file} ({type(exc).__name__}: {exc}); using defaults")
            return Preferences()
        if not isinstance(raw, dict):
            problems.append(f"config: {self.config_file} is not a JSON object; using defaults")
            return Preferences()
        return Preferences.from_dict(raw, problems)

    def save_prefs(self) -> None:
        """Write config.json atomically, through a temp file only this process uses."""
        self.config_dir.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        make_private(self.config_dir)
        data = (json.dumps(self.prefs.to_dict(), indent=2) + "\n").encode("ascii")
        write_private_atomic(self.config_file, data)
        remove_dead_temps(self.config_dir, self.config_file.name + ".")  # left by a save that was killed


def _absolute_dir(env: dict[str, str], name: str, problems: list[str]) -> Path | None:
    """``env[name]`` as an absolute path; a relative one is refused (it would land wherever
    the editor happened to start), so the default is used and the log says why."""
    raw = env.get(name)
    if not raw:
        return None
    path = Path(raw).expanduser()
    if not path.is_absolute():
        problems.append(f"{name}={raw!r} is a relative path; refusing it and using the default folder")
        return None
    return path


def _idle_unload_from_env(env: dict[str, str], problems: list[str]) -> float | None:
    raw = env.get(IDLE_UNLOAD_ENV, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not valid_idle_unload_sec(value):
        problems.append(f"{IDLE_UNLOAD_ENV}={raw!r} is not a number of seconds >= 0; ignoring it")
        return None
    return value


def _check_memory_limit_env(env: dict[str, str], problems: list[str]) -> None:
    """Name a bad LOFI_MEMORY_LIMIT_BYTES in the log (device.py reads it and ignores it then)."""
    from .device import MEMORY_LIMIT_ENV, memory_limit_bytes

    raw = env.get(MEMORY_LIMIT_ENV, "").strip()
    if raw and memory_limit_bytes(env) is None:
        problems.append(f"{MEMORY_LIMIT_ENV}={raw!r} is not a whole number of bytes >= 0; ignoring it")


def make_private(folder: Path) -> None:
    """Drop group/other access from a folder of ours (0700); never fatal."""
    try:
        st = folder.stat()
        if st.st_mode & 0o077:
            os.chmod(folder, DIR_MODE)
    except OSError as exc:
        log.warning("cannot make %s private: %s", folder, exc)
