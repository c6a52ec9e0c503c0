"""Downloads in a child process, so the daemon itself can stay offline.

The daemon sets ``HF_HUB_OFFLINE=1`` before anything imports huggingface_hub or
transformers, which makes every hub request in that process fail. Downloads therefore run
in ``python -m lofi_daemon.models.worker`` with the offline switch removed from its
environment. The two talk over the child's stdin/stdout (never the daemon's protocol
stdout):

    parent -> child   one JSON line {manifest, models_dir, options}; then stdin stays open
    child  -> parent  JSON lines {"event": "progress", ...} ... then one of
                      {"event": "complete", ...} | {"event": "error", "error": {code, message, data}}

Closing the child's stdin means "cancel": the child stops within one chunk, keeps its
partial file for the next run and reports CANCELLED. The same happens when the daemon
dies (even by kill -9), because the pipe closes with it, so no orphan keeps downloading.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import subprocess
import sys
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from ..cancel import CancelToken
from ..errors import (
    DownloadFailed,
    DownloadInProgress,
    ErrorCode,
    InvalidParams,
    JobCancelled,
    LofiError,
)
from .manifest import ModelManifest
from .progress import DownloadProgress

log = logging.getLogger(__name__)

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
CANCEL_GRACE_SEC = 5.0


def download_in_subprocess(
    manifest: ModelManifest,
    models_dir: Path,
    on_progress: Callable[[DownloadProgress], None] | None = None,
    cancel: CancelToken | None = None,
    *,
    options: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    python: str = sys.executable,
) -> dict[str, Any]:
    """Run the download in a worker process; same contract as ``ModelStore.download``.

    Blocks until done (call it from a worker thread). Returns ``{commit, bytes_total,
    files}``; raises DownloadFailed / DownloadInProgress / JobCancelled.
    ``options``: ``retry`` ({attempts, base_delay, max_delay}), ``read_timeout``, ``chunk_size``.
    """
    cancel = cancel or CancelToken()
    child_env = dict(os.environ if env is None else env)
    for name in OFFLINE_VARIABLES:
        child_env.pop(name, None)
    proc = subprocess.Popen(
        [python, "-m", "lofi_daemon.models.worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=child_env,
        text=True,
        encoding="utf-8",
        bufsize=1,
    )
    assert proc.stdin is not None and proc.stdout is not None
    job = {"manifest": manifest.to_dict(), "models_dir": str(models_dir), "options": options or {}}
    try:
        proc.stdin.write(json.dumps(job) + "\n")
        proc.stdin.flush()
    except OSError:
        pass  # the child died at once; its exit code tells below
    lines: "queue.Queue[str | None]" = queue.Queue()
    reader = threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True, name="lofi-download-reader")
    reader.start()
    cancel_sent = False
    try:
        while True:
            if cancel.cancelled and not cancel_sent:
                _close(proc.stdin)  # cooperative: the child stops within one chunk
                cancel_sent = True
            try:
                line = lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if line is None:
                break
            event = _parse(line)
            if event is None:
                continue
            kind = event.get("event")
            if kind == "progress" and on_progress is not None:
                on_progress(DownloadProgress(**event["progress"]))
            elif kind == "complete":
                return event["result"]
            elif kind == "error":
                raise error_from_rpc(event["error"])
        code = proc.wait(timeout=CANCEL_GRACE_SEC)
        if cancel.cancelled:
            raise JobCancelled()
        raise DownloadFailed(
            f"the download worker stopped unexpectedly (exit code {code})",
            hint="See the daemon log for its error, then run setup again; it continues where it stopped.",
            exit_code=code,
        )
    finally:
        _close(proc.stdin)
        try:
            proc.wait(timeout=CANCEL_GRACE_SEC)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def error_from_rpc(err: dict[str, Any]) -> LofiError:
    data = dict(err.get("data") or {})
    name = data.pop("error_code", "")
    hint = data.pop("hint", None)
    message = err.get("message", "download failed")
    if name == ErrorCode.CANCELLED.name:
        return JobCancelled()
    cls = {
        ErrorCode.DOWNLOAD_FAILED.name: DownloadFailed,
        ErrorCode.DOWNLOAD_IN_PROGRESS.name: DownloadInProgress,
        ErrorCode.INVALID_PARAMS.name: InvalidParams,
    }.get(name)
    if cls is not None:
        return cls(message, hint=hint, **data)
    code = ErrorCode[name] if name in ErrorCode.__members__ else ErrorCode.INTERNAL_ERROR
    return LofiError(message, code=code, hint=hint, **data)


def _pump(stream: Any, lines: "queue.Queue[str | None]") -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _parse(line: str) -> dict[str, Any] | None:
    try:
        event = json.loads(line)
    except ValueError:
        log.warning("download worker wrote a non-JSON line: %r", line[:200])
        return None
    return event if isinstance(event, dict) else None


def _close(stream: Any) -> None:
    try:
        stream.close()
    except OSError:
        pass


# -- the child ----------------------------------------------------------------------------


def main() -> int:
    logging.basicConfig(
        level=os.environ.get("LOFI_LOG_LEVEL", "INFO"),
        stream=sys.stderr,
        format="%(asctime)s lofi-download %(levelname)s %(name)s: %(message)s",
    )
    out = sys.stdout
    sys.stdout = sys.stderr  # a stray print from a library must not corrupt our events
    write_lock = threading.Lock()
    cancel = CancelToken()

    def emit(event: dict[str, Any]) -> None:
        with write_lock:
            try:
                out.write(json.dumps(event, separators=(",", ":")) + "\n")
                out.flush()
            except (BrokenPipeError, ValueError):
                cancel.cancel()  # nobody is listening any more: stop at the next chunk

    try:
        job = json.loads(sys.stdin.readline())
        manifest = ModelManifest.from_dict(job["manifest"])
        models_dir = Path(job["models_dir"])
        options = _options(job.get("options") or {})
    except (ValueError, KeyError, TypeError) as exc:
        emit({"event": "error", "error": DownloadFailed(f"bad download job: {exc}").to_rpc()})
        return 2

    threading.Thread(target=_cancel_on_eof, args=(cancel,), daemon=True, name="lofi-download-eof").start()

    from .download import download
    from .layout import StoreLayout

    try:
        record = download(
            StoreLayout(models_dir), manifest,
            on_progress=lambda p: emit({"event": "progress", "progress": asdict(p)}), cancel=cancel, **options,
        )
    except LofiError as exc:
        emit({"event": "error", "error": exc.to_rpc()})
        return 1
    except Exception as exc:  # a bug: report it as data, not as a dead pipe
        log.exception("download failed")
        emit({"event": "error", "error": LofiError(f"download crashed: {exc!r}").to_rpc()})
        return 2
    emit(
        {
            "event": "complete",
            "result": {"commit": record.commit, "bytes_total": record.total_bytes, "files": len(record.files)},
        }
    )
    return 0


def worker_options(options: dict[str, Any]) -> dict[str, Any]:
    """The JSON form of ``download`` options, for the job line."""
    unsupported = set(options) - {"retry", "read_timeout", "chunk_size", "endpoint"}
    if unsupported:
        raise TypeError(f"options not supported by the download worker: {sorted(unsupported)}")
    out: dict[str, Any] = {}
    if "retry" in options:
        retry = options["retry"]
        out["retry"] = {"attempts": retry.attempts, "base_delay": retry.base_delay, "max_delay": retry.max_delay}
    for key in ("read_timeout", "chunk_size"):
        if key in options:
            out[key] = options[key]
    return out


def _options(raw: dict[str, Any]) -> dict[str, Any]:
    from .download import RetryPolicy

    options: dict[str, Any] = {}
    if "retry" in raw:
        options["retry"] = RetryPolicy(**raw["retry"])
    if "read_timeout" in raw:
        options["read_timeout"] = float(raw["read_timeout"])
    if "chunk_size" in raw:
        options["chunk_size"] = int(raw["chunk_size"])
    return options


def _cancel_on_eof(cancel: CancelToken) -> None:
    try:
        while sys.stdin.readline():
            pass
    except (OSError, ValueError):
        pass
    cancel.cancel()


if __name__ == "__main__":
    sys.exit(main())
