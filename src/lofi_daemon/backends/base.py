"""The small interface every backend implements, and the value types it speaks.

A backend knows tensors, not JSON-RPC: it gets a validated ``GenerationRequest``, a
``Progress`` sink and a ``CancelToken``, and returns ``GeneratedAudio``. Heavy imports
(torch, transformers, diffusers) happen inside ``load`` / ``generate``, never at import
time of this package.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, Sequence

from ..errors import InvalidParams

if TYPE_CHECKING:  # numpy only for type hints; it is cheap but not needed at start-up
    from ..cancel import CancelToken
    import numpy as np

    from ..device import DevicePlan


@dataclass(frozen=True)
class ParamSpec:
    """One backend parameter as ``get_backends`` declares it."""

    name: str
    type: str  # "int" | "float" | "bool" | "choice"
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None
    description: str = ""

    def validate(self, value: Any) -> Any:
        """Return ``value`` coerced to this parameter's type, or raise INVALID_PARAMS."""
        where = f"parameter '{self.name}'"
        if self.type == "bool":
            if not isinstance(value, bool):
                raise InvalidParams(f"{where} must be true or false", field=self.name)
            return value
        if self.type == "choice":
            if value not in (self.choices or ()):
                raise InvalidParams(
                    f"{where} must be one of {list(self.choices or ())}, got {value!r}",
                    field=self.name,
                    choices=list(self.choices or ()),
                )
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidParams(f"{where} must be a number", field=self.name)
        if self.type == "int":
            if isinstance(value, float) and not value.is_integer():
                raise InvalidParams(f"{where} must be a whole number", field=self.name)
            value = int(value)
        else:
            value = float(value)
        if value != value or (self.minimum is not None and value < self.minimum) or (
            self.maximum is not None and value > self.maximum
        ):
            raise InvalidParams(
                f"{where} must be between {self.minimum} and {self.maximum}, got {value}",
                field=self.name,
                minimum=self.minimum,
                maximum=self.maximum,
            )
        return value

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "default": self.default}
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        if self.choices is not None:
            out["choices"] = list(self.choices)
        if self.description:
            out["description"] = self.description
        return out


@dataclass(frozen=True)
class Capabilities:
    min_duration_sec: float
    max_duration_sec: float
    sample_rate: int  # the model's native rate; tracks are always written at 48 kHz
    parameters: tuple[ParamSpec, ...] = ()
    description: str = ""
    #: Takes ``continue_from`` (a library track): the result begins with that track's last
    #: seconds and goes on from there; its metadata says where the new part starts
    #: (``join_frame``, at 48 kHz). The radio's flow mode joins tracks there.
    continues_audio: bool = False
    #: Decodes in windows and hands each one to ``request.windows`` as it is done, so a track
    #: can play while the rest is decoded (the windows, joined, are exactly ``samples``).
    decodes_in_windows: bool = False

    def param(self, name: str) -> ParamSpec | None:
        return next((p for p in self.parameters if p.name == name), None)

    def resolve_params(self, given: dict[str, Any], backend: str = "this backend") -> dict[str, Any]:
        """Validate ``given`` and fill in defaults; unknown names are INVALID_PARAMS."""
        known = {p.name for p in self.parameters}
        unknown = sorted(set(given) - known)
        if unknown:
            raise InvalidParams(
                f"unknown parameter(s) for {backend}: {', '.join(unknown)}",
                field=unknown[0],
                unknown=unknown,
                allowed=sorted(known),
                backend=backend,
                hint=f"{backend} takes " + (", ".join(sorted(known)) if known else "no parameters") + ".",
            )
        return {p.name: p.validate(given[p.name]) if p.name in given else p.default for p in self.parameters}


@dataclass(frozen=True)
class Continuation:
    """The library track a continuation starts from (only for ``continues_audio`` backends)."""

    track_id: str
    path: str  # its audio file (48 kHz); untrusted like every file the daemon reads


class AudioWindows(Protocol):
    """Where a ``decodes_in_windows`` backend puts each decoded window, in order."""

    def window(self, samples: "np.ndarray", sample_rate: int) -> None: ...


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    duration_sec: float
    seed: int
    params: dict[str, Any] = field(default_factory=dict)  # validated, defaults filled
    continue_from: Continuation | None = None
    # Set only when someone plays the track as it decodes; never changes the audio.
    windows: AudioWindows | None = field(default=None, compare=False, repr=False)


@dataclass
class GeneratedAudio:
    samples: "np.ndarray"  # float32, shape (channels, frames)
    sample_rate: int
    # Anything that can change bits or explains the result: device, dtype, threads, ...
    metadata: dict[str, Any] = field(default_factory=dict)
    # Made to loop: the last sample flows into the first, so no edge fades (they would dip
    # at every pass) and playback wraps on the exact last sample.
    loopable: bool = False
    # Which prompt words the backend understood and which it ignored ({"understood": [...],
    # "ignored": [...]}), for backends that read words rather than embed the whole prompt.
    prompt_report: dict[str, list[str]] | None = None


class Progress(Protocol):
    """Where a backend reports progress. The job turns it into a weighted percent + ETA.

    ``plan`` names the phases in order with their expected relative cost (any positive
    numbers; the backend knows what is expensive on its device). ``update`` reports
    ``current`` of ``total`` units done in ``phase``.
    """

    def plan(self, phases: Sequence[tuple[str, float]]) -> None: ...

    def update(self, phase: str, current: int, total: int) -> None: ...


class Backend(ABC):
    """One model family. Instances are cheap until ``load``."""

    name: str = ""
    #: What tracks record so a cache hit means the same model made them.
    model_version: str = ""
    #: False for backends with nothing to load or unload (no weights).
    has_weights: bool = True
    #: The weights' licence in one line, said before a download starts ("" = nothing to accept).
    licence: str = ""
    #: Top-level Python packages ``load`` imports (the ``models`` extra); checked without importing.
    requires: tuple[str, ...] = ()

    def missing_libraries(self) -> list[str]:
        """The packages of ``requires`` that are not installed (found with find_spec, no import)."""
        import importlib.util

        return [name for name in self.requires if importlib.util.find_spec(name) is None]

    @abstractmethod
    def capabilities(self) -> Capabilities: ...

    @abstractmethod
    def is_installed(self) -> bool:
        """True when everything ``load`` needs is on disk (no network, no heavy import)."""

    def size_bytes(self) -> int:
        """Bytes on disk once installed (0 for backends without weights)."""
        return 0

    @property
    def loaded(self) -> bool:
        return False

    def held_memory(self) -> dict[str, Any] | None:
        """What ``load`` holds: ``{"weight_bytes", "device", "low_vram"}``; None when nothing is."""
        return None

    @abstractmethod
    def load(self, device: "DevicePlan") -> None:
        """Load weights onto ``device``; raise ModelLoadFailed with a hint on failure."""

    @abstractmethod
    def unload(self) -> None:
        """Free every model tensor (and the accelerator cache)."""

    @abstractmethod
    def generate(self, request: GenerationRequest, progress: Progress, cancel: CancelToken) -> GeneratedAudio:
        """Make audio for ``request``; call ``cancel.check()`` at every step."""
