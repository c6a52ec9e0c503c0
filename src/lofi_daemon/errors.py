"""Every error the daemon can report, in one table.

    LofiError                 base: carries an ErrorCode, a message and ``data`` (with a hint)
    ├── InvalidParams         INVALID_PARAMS (protocol faults use LofiError with their code)
    ├── BackendNotInstalled   BACKEND_NOT_INSTALLED
    ├── ...                   one thin subclass per domain code where callers raise it often
    └── JobCancelled          CANCELLED, raised inside a backend to unwind a cancelled job

The table ``ERRORS`` is the single source: the Lua plugin (lua/lofi/errors.lua) and
docs/protocol.md list the same names and codes, and a test fails if they drift.
"""

from __future__ import annotations

import enum
import errno
import resource
from dataclasses import dataclass
from typing import Any


class ErrorCode(enum.IntEnum):
    PARSE_ERROR = -32700
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603

    BACKEND_NOT_INSTALLED = -32001
    BACKEND_LOADING = -32002
    QUEUE_FULL = -32003
    INVALID_DURATION = -32004
    INVALID_BACKEND = -32005
    TRACK_NOT_FOUND = -32006
    ALREADY_COMPLETE = -32007
    DOWNLOAD_IN_PROGRESS = -32008
    MODEL_LOAD_FAILED = -32009
    MODEL_INFERENCE_FAILED = -32010
    CANCELLED = -32011
    DOWNLOAD_FAILED = -32012
    STORAGE_ERROR = -32013
    RESOURCE_EXHAUSTED = -32014  # out of descriptors (ulimit -n) or memory: not the model's fault
    PLAYBACK_FAILED = -32020  # playback: no audio output, sink failed, nothing to play, remote daemon
    TRACK_DAMAGED = -32021  # a library track whose file no longer matches its sidecar
    REMOTE_UNAVAILABLE = -32030  # the remote generator (ssh) could not be started, went away, or speaks another protocol


@dataclass(frozen=True)
class ErrorInfo:
    default_hint: str
    level: str  # how loudly a client should show it: "error" | "warn" | "info"


ERRORS: dict[ErrorCode, ErrorInfo] = {
    ErrorCode.PARSE_ERROR: ErrorInfo("Send one JSON object per line.", "error"),
    ErrorCode.INVALID_REQUEST: ErrorInfo("Send a JSON-RPC 2.0 request object.", "error"),
    ErrorCode.METHOD_NOT_FOUND: ErrorInfo("See docs/protocol.md for the methods.", "error"),
    ErrorCode.INVALID_PARAMS: ErrorInfo("Check the parameter names and ranges.", "error"),
    ErrorCode.INTERNAL_ERROR: ErrorInfo("This is a bug: see the daemon log.", "error"),
    ErrorCode.BACKEND_NOT_INSTALLED: ErrorInfo("Run :LofiSetup <backend> to download it.", "warn"),
    ErrorCode.BACKEND_LOADING: ErrorInfo("The model is loading; try again in a moment.", "info"),
    ErrorCode.QUEUE_FULL: ErrorInfo("Wait for a track to finish or cancel one.", "warn"),
    ErrorCode.INVALID_DURATION: ErrorInfo("Pick a duration inside the backend's range.", "error"),
    ErrorCode.INVALID_BACKEND: ErrorInfo("Pick one of the available backends.", "error"),
    ErrorCode.TRACK_NOT_FOUND: ErrorInfo("List tracks with :LofiTracks.", "warn"),
    ErrorCode.ALREADY_COMPLETE: ErrorInfo("The job has already finished.", "info"),
    ErrorCode.DOWNLOAD_IN_PROGRESS: ErrorInfo("Wait for the running download.", "info"),
    ErrorCode.MODEL_LOAD_FAILED: ErrorInfo("Run :LofiSetup <backend> again.", "error"),
    ErrorCode.MODEL_INFERENCE_FAILED: ErrorInfo("Retry with another seed.", "error"),
    ErrorCode.CANCELLED: ErrorInfo("The job was cancelled.", "info"),
    ErrorCode.DOWNLOAD_FAILED: ErrorInfo("Check network and disk, then run :LofiSetup again.", "error"),
    ErrorCode.STORAGE_ERROR: ErrorInfo("Check free space and permissions of the cache dir.", "error"),
    ErrorCode.RESOURCE_EXHAUSTED: ErrorInfo("The daemon ran out of open files or memory; raise ulimit -n or free "
                                            "memory, then retry.", "error"),
    ErrorCode.PLAYBACK_FAILED: ErrorInfo("Pick another output with player.sink; :checkhealth lofi lists them.", "warn"),
    ErrorCode.TRACK_DAMAGED: ErrorInfo("Generate the track again (data.regenerate is the request), or delete it.", "warn"),
    ErrorCode.REMOTE_UNAVAILABLE: ErrorInfo("Check that the generator command (e.g. ssh gpu-box lofi-daemon --stdio) "
                                            "works in a terminal; :checkhealth lofi shows the remote.", "error"),
}


class LofiError(Exception):
    """An error with a protocol code, a message for people and facts in ``data``."""

    code: ErrorCode = ErrorCode.INTERNAL_ERROR

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode | None = None,
        hint: str | None = None,
        **facts: Any,
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.hint = hint or ERRORS[self.code].default_hint
        self.facts = facts

    @property
    def data(self) -> dict[str, Any]:
        return {"error_code": self.code.name, "hint": self.hint, **self.facts}

    def to_rpc(self) -> dict[str, Any]:
        return {"code": int(self.code), "message": self.message, "data": self.data}


CLIP_CHARS = 4000  # a foreign string (exception text, file name, stderr) inside one message


def clip(text: str, limit: int = CLIP_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how much was cut: for foreign strings
    where they enter a message, so none can make a notification too big to send."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters cut]"


def _error_class(name: str, error_code: ErrorCode) -> type[LofiError]:
    return type(name, (LofiError,), {"code": error_code, "__doc__": error_code.name})


InvalidParams = _error_class("InvalidParams", ErrorCode.INVALID_PARAMS)
BackendNotInstalled = _error_class("BackendNotInstalled", ErrorCode.BACKEND_NOT_INSTALLED)
BackendLoading = _error_class("BackendLoading", ErrorCode.BACKEND_LOADING)
QueueFull = _error_class("QueueFull", ErrorCode.QUEUE_FULL)
InvalidDuration = _error_class("InvalidDuration", ErrorCode.INVALID_DURATION)
InvalidBackend = _error_class("InvalidBackend", ErrorCode.INVALID_BACKEND)
TrackNotFound = _error_class("TrackNotFound", ErrorCode.TRACK_NOT_FOUND)
AlreadyComplete = _error_class("AlreadyComplete", ErrorCode.ALREADY_COMPLETE)
DownloadInProgress = _error_class("DownloadInProgress", ErrorCode.DOWNLOAD_IN_PROGRESS)
ModelLoadFailed = _error_class("ModelLoadFailed", ErrorCode.MODEL_LOAD_FAILED)
ModelInferenceFailed = _error_class("ModelInferenceFailed", ErrorCode.MODEL_INFERENCE_FAILED)
DownloadFailed = _error_class("DownloadFailed", ErrorCode.DOWNLOAD_FAILED)
StorageError = _error_class("StorageError", ErrorCode.STORAGE_ERROR)
ResourceExhausted = _error_class("ResourceExhausted", ErrorCode.RESOURCE_EXHAUSTED)
PlaybackFailed = _error_class("PlaybackFailed", ErrorCode.PLAYBACK_FAILED)
TrackDamaged = _error_class("TrackDamaged", ErrorCode.TRACK_DAMAGED)
RemoteUnavailable = _error_class("RemoteUnavailable", ErrorCode.REMOTE_UNAVAILABLE)


def resource_error(exc: BaseException, doing: str) -> LofiError | None:
    """``exc`` (or what caused it) as RESOURCE_EXHAUSTED when it is a process or system limit
    (EMFILE, ENFILE, ENOMEM), with a hint that names the limit; None for any other failure."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.errno in (errno.EMFILE, errno.ENFILE, errno.ENOMEM):
            return ResourceExhausted(f"{doing} failed: {clip(str(cause), 500)}", hint=_limit_hint(cause.errno),
                                     os_error=errno.errorcode.get(cause.errno or 0, "?"))
        cause = cause.__cause__ or cause.__context__
    return None


def _limit_hint(code: int | None) -> str:
    if code == errno.EMFILE:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        return (f"The daemon reached its open-file limit (ulimit -n = {soft}): close some clients, or start "
                "it with a higher ulimit -n (e.g. 4096); then retry.")
    if code == errno.ENFILE:
        return "The system is out of open files (sysctl fs.file-max): close other programs, then retry."
    return "The system is out of memory: close other programs or pick a smaller model, then retry."


class JobCancelled(LofiError):
    """Raised by a backend's cancel check; unwinds the job, which ends as cancelled."""

    code = ErrorCode.CANCELLED

    def __init__(self, at_step: int = 0, total_steps: int = 0) -> None:
        super().__init__("cancelled", at_step=at_step, total_steps=total_steps)
        self.at_step = at_step
        self.total_steps = total_steps
