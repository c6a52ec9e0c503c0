"""Typed parameters per method, decoded once at the boundary.

Every model forbids unknown fields (a typo must not fall back to a default) and uses strict
types ("30" is not a number). ``generate`` is the one exception: its extra fields are the
chosen backend's own parameters, checked against what that backend declares.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import InvalidParams

MAX_SEED = 2**63 - 1


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class NoParams(Params):
    pass


class GenerateParams(Params):
    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    prompt: str = Field(min_length=1, max_length=512)
    duration_sec: float
    backend: str | None = None
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    format: Literal["wav", "flac", "ogg"] | None = None
    # A library track to continue (backends that declare continues_audio; the radio's flow).
    continue_from: str | None = Field(default=None, min_length=1, max_length=128)
    # Play it as soon as it can be heard (while it decodes, where the backend decodes in windows).
    play: bool = False

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("prompt must contain some words")
        return value

    @property
    def backend_params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ShutdownParams(Params):
    force: bool = False  # stop the shared daemon for every client, not just end this connection


class TrackParams(Params):
    track_id: str = Field(min_length=1, max_length=128)


class BackendParams(Params):
    backend: str = Field(min_length=1, max_length=64)


class ReadTrackParams(Params):
    """One chunk of a track's audio (the remote generator fetching a finished track)."""

    track_id: str = Field(min_length=1, max_length=128)
    offset: int = Field(default=0, ge=0, le=2**40)
    max_bytes: int = Field(default=1 << 20, ge=1, le=4 << 20)


class ListTracksParams(Params):
    backend: str | None = None
    limit: int | None = Field(default=None, ge=1, le=10_000)


def parse(model: type[Params], raw: Any) -> Params:
    """Decode ``raw`` JSON-RPC params into ``model`` or raise INVALID_PARAMS naming the field."""
    if raw is None:
        raw = {}
    if isinstance(raw, list):
        raise InvalidParams("parameters must be given by name (a JSON object), not as a list")
    if not isinstance(raw, dict):
        raise InvalidParams("params must be a JSON object")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "params"
        if err["type"] == "extra_forbidden":
            allowed = sorted(model.model_fields)
            raise InvalidParams(f"unknown parameter '{field}'", field=field, allowed=allowed,
                                hint=f"Known parameters: {', '.join(allowed) or 'none'}.") from None
        message = err["msg"].removeprefix("Value error, ")
        raise InvalidParams(f"invalid '{field}': {message}", field=field) from None


# ----- playback (src/lofi_daemon/playback) -----------------------------------------------------
class PlayParams(Params):
    track_id: str | None = Field(default=None, min_length=1, max_length=128)  # or "last"
    path: str | None = Field(default=None, min_length=1, max_length=4096)  # a file outside the library
    sink: str | None = Field(default=None, min_length=1, max_length=1024)
    loop: bool | None = None
    queue: bool = False  # after the current pass (crossfaded) instead of now
    keep_playing: bool | None = None  # the asker's player.keep_playing: play on after the last editor quits


class SeekParams(Params):
    position_sec: float = Field(ge=0, le=3600)


class VolumeParams(Params):
    volume: float = Field(ge=0, le=150)  # percent


class LoopParams(Params):
    on: bool


class RadioStartParams(Params):
    prompt: str | None = Field(default=None, min_length=1, max_length=512)
    prompts: list[str] | None = Field(default=None, min_length=1, max_length=64)
    backend: str | None = None
    duration_sec: float | None = None
    params: dict[str, Any] | None = None
    crossfade_sec: float | None = Field(default=None, ge=0.1, le=30)
    sink: str | None = Field(default=None, min_length=1, max_length=1024)
    keep_playing: bool | None = None  # as in PlayParams
    # What plays while the first track is made (docs/radio.md), and how tracks follow each other.
    bridge: Literal["auto", "library", "procedural", "none"] = "auto"
    mode: Literal["flow", "shuffle"] | None = None  # None: flow where the backend can continue audio


class RadioSetPromptParams(Params):
    prompt: str | None = Field(default=None, min_length=1, max_length=512)
    prompts: list[str] | None = Field(default=None, min_length=1, max_length=64)


class RadioStopParams(Params):
    keep_playing: bool = False
