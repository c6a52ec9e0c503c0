"""The remote generator as a child process: our JSON-RPC over its stdin/stdout.

The command is an argv list (``["ssh", "gpu-box", "lofi-daemon", "--stdio"]``), started without
a shell; ssh is the transport and its keys are the authentication, so nothing of ours listens on
a port. The child is started on the first request and again on the first request after it died.
Starting ends with a ``ping`` handshake: a remote of another protocol version is refused.

When the child goes away every waiting request fails with REMOTE_UNAVAILABLE, and
``on_lost`` is called so jobs watching the remote can end too. A remote's own error replies
come back as ``LofiError`` with the remote's code, message, hint and facts.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import time
from typing import Any, Callable

from .. import PROTOCOL_VERSION
from ..errors import ErrorCode, LofiError, RemoteUnavailable

log = logging.getLogger(__name__)

LINE_LIMIT = 16 << 20  # a read_track reply carries up to 4 MiB of base64; room to spare
START_TIMEOUT_SEC = 60.0  # ssh may ask the agent, wake a host, start a Python
STDERR_LINES_KEPT = 20

Notify = Callable[[str, dict[str, Any]], None]


def describe(argv: list[str]) -> str:
    return " ".join(argv)


class RemoteConnection:
    def __init__(self, argv: list[str], on_notification: Notify, *,
                 on_lost: Callable[[str], None] = lambda why: None, env: dict[str, str] | None = None,
                 start_timeout_sec: float = START_TIMEOUT_SEC) -> None:
        self.argv = list(argv)
        self._on_notification = on_notification
        self._on_lost = on_lost
        # The child never inherits our own generator setting: a local stand-in for ssh (tests,
        # a second daemon on this machine) would otherwise start a generator of its own.
        base = dict(os.environ if env is None else env)
        self._env = {k: v for k, v in base.items() if k not in ("LOFI_GENERATOR", "LOFI_GENERATOR_BACKENDS")}
        self._start_timeout = start_timeout_sec
        self._proc: asyncio.subprocess.Process | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._next_id = 0
        self._starting: asyncio.Task[dict[str, Any]] | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES_KEPT)
        self.info: dict[str, Any] | None = None  # the remote's ping answer while connected
        self.last_error: str | None = None
        self._closing = False  # we closed it: its exit is no news
        self.failed_at: float | None = None  # monotonic time of the last failed start or loss

    @property
    def connected(self) -> bool:
        return self._proc is not None and self._proc.returncode is None and self.info is not None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # ----- starting -------------------------------------------------------------------------
    async def ensure(self) -> dict[str, Any]:
        """Connected to the remote (starting it when needed); its ``ping`` answer."""
        if self.connected:
            assert self.info is not None
            return self.info
        if self._starting is None or self._starting.done():
            self._starting = asyncio.get_running_loop().create_task(self._start())
        try:
            return await asyncio.shield(self._starting)
        except RemoteUnavailable:
            self.failed_at = time.monotonic()
            raise

    async def _start(self) -> dict[str, Any]:
        self._stderr.clear()
        self._closing = False
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=self._env, limit=LINE_LIMIT, start_new_session=True)
        except OSError as exc:
            raise self._unavailable(f"cannot start the remote generator {describe(self.argv)!r}: {exc}") from None
        self._proc = proc
        loop = asyncio.get_running_loop()
        stderr_done = loop.create_task(self._read_stderr(proc))
        loop.create_task(self._read(proc, stderr_done))
        try:
            info = await asyncio.wait_for(self._request(proc, "ping", None), self._start_timeout)
        except asyncio.TimeoutError:
            self._kill(proc)
            raise self._unavailable(f"the remote generator did not answer ping within {self._start_timeout:g} s") from None
        remote_protocol = info.get("protocol") if isinstance(info, dict) else None
        if remote_protocol != PROTOCOL_VERSION:
            self._kill(proc)
            raise self._unavailable(
                f"the remote generator speaks protocol {remote_protocol}, this daemon {PROTOCOL_VERSION}",
                hint="Install the same lofi.nvim version on both machines (update the plugin here, "
                     "and the clone there followed by its pip install).",
                remote_protocol=remote_protocol, remote_version=info.get("version") if isinstance(info, dict) else None)
        self.info = info
        self.last_error = None
        self.failed_at = None
        log.info("remote generator %r connected (pid %s, version %s)", describe(self.argv), proc.pid, info.get("version"))
        return info

    # ----- requests -------------------------------------------------------------------------
    async def request(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Send ``method`` to the remote (connecting first) and return its result."""
        await self.ensure()
        proc = self._proc
        if proc is None:  # lost in between
            raise self._unavailable(self.last_error or "the remote generator went away")
        return await self._request(proc, method, params)

    async def _request(self, proc: asyncio.subprocess.Process, method: str, params: dict[str, Any] | None) -> Any:
        self._next_id += 1
        req_id = self._next_id
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": req_id, "method": method}
        if params is not None:
            message["params"] = params
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = future
        try:
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
            await proc.stdin.drain()
        except (OSError, RuntimeError) as exc:  # the pipe broke: the reader will tell why, and fail the future
            try:
                return await asyncio.wait_for(future, 5.0)
            except asyncio.TimeoutError:
                raise self._unavailable(f"the remote generator went away ({type(exc).__name__})") from None
            finally:
                self._pending.pop(req_id, None)
        try:
            return await future
        finally:
            self._pending.pop(req_id, None)

    # ----- reading --------------------------------------------------------------------------
    async def _read(self, proc: asyncio.subprocess.Process, stderr_done: asyncio.Task[None]) -> None:
        assert proc.stdout is not None
        try:
            while True:
                try:
                    line = await proc.stdout.readline()
                except ValueError:  # a line over LINE_LIMIT: the stream is no longer framed
                    log.error("remote generator sent a line over %d bytes; dropping the connection", LINE_LIMIT)
                    self._kill(proc)
                    break
                if not line:
                    break
                self._handle_line(line)
        finally:
            code = await proc.wait()
            try:  # its last words (ssh: "Could not resolve hostname ...") name the cause
                await asyncio.wait_for(asyncio.shield(stderr_done), 1.0)
            except asyncio.TimeoutError:
                pass
            self._lost(proc, code)

    def _handle_line(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            log.warning("remote generator sent a line that is not JSON: %r", line[:200])
            return
        if not isinstance(message, dict):
            return
        if "method" in message:
            params = message.get("params")
            if isinstance(message["method"], str) and isinstance(params, dict):
                try:
                    self._on_notification(message["method"], params)
                except Exception:
                    log.exception("handling the remote's %s failed", message["method"])
            return
        future = self._pending.get(message.get("id"))  # type: ignore[arg-type]
        if future is None or future.done():
            return
        error = message.get("error")
        if isinstance(error, dict):
            future.set_exception(remote_error(error))
        else:
            future.set_result(message.get("result"))

    async def _read_stderr(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        while True:
            try:
                line = await proc.stderr.readline()
            except ValueError:
                continue
            if not line:
                return
            text = line.decode("utf-8", "replace").rstrip()
            if text:
                self._stderr.append(text)
                log.debug("remote stderr: %s", text)

    def _lost(self, proc: asyncio.subprocess.Process, code: int | None) -> None:
        if self._proc is not proc:
            return
        self._proc = None
        self.info = None
        why = f"the remote generator went away (exit code {code})"
        last = self.last_stderr()
        if last:
            why += f": {last}"
        self.last_error = why
        if not self._closing:
            self.failed_at = time.monotonic()
        log.log(logging.INFO if self._closing else logging.WARNING, "%s", why)
        for future in list(self._pending.values()):
            if not future.done():
                future.set_exception(self._unavailable(why))
        self._on_lost(why)

    def last_stderr(self) -> str:
        return self._stderr[-1] if self._stderr else ""

    def _unavailable(self, message: str, **facts: Any) -> RemoteUnavailable:
        self.last_error = message
        facts.setdefault("generator", describe(self.argv))
        return RemoteUnavailable(message, **facts)

    # ----- ending ---------------------------------------------------------------------------
    def _kill(self, proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is None:
            try:
                proc.kill()
            except ProcessLookupError:
                pass

    async def close(self, timeout: float = 5.0) -> None:
        """Close the remote's stdin (it finishes nothing new and exits), then kill if it lingers."""
        proc = self._proc
        if proc is None:
            return
        self._closing = True
        try:
            assert proc.stdin is not None
            proc.stdin.close()
        except (OSError, RuntimeError):
            pass
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except asyncio.TimeoutError:
            self._kill(proc)


def remote_error(error: dict[str, Any]) -> LofiError:
    """The remote's error reply as our own error: same code, message, hint and facts."""
    data = error.get("data") if isinstance(error.get("data"), dict) else {}
    try:
        code = ErrorCode(error.get("code"))
    except ValueError:
        code = ErrorCode.INTERNAL_ERROR
    facts = {k: v for k, v in data.items() if k not in ("error_code", "hint") and isinstance(k, str)}
    hint = data.get("hint") if isinstance(data.get("hint"), str) else None
    message = error.get("message") if isinstance(error.get("message"), str) else "the remote generator failed"
    return LofiError(f"remote: {message}", code=code, hint=hint, **facts)
