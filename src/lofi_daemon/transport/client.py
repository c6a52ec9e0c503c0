"""Reach the shared daemon: connect, or start a detached one and connect.

    conn = await connect_or_spawn(socket_path, env)   # an RpcConnection
    reply = await conn.request("ping")

Used by the ``lofi`` CLI and the tests. The spawn lock makes the first client start the
daemon and the others wait for it; the daemon's own life lock makes that safe even against
spawners that take no lock (Neovim).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from ..rpc import framing
from .lock import SpawnLock
from .paths import ensure_private_dir
from .peer import peer_uid

SPAWN_WAIT_SEC = 30.0


class DaemonUnreachable(Exception):
    pass


class RpcConnection:
    """Requests with ids over one socket; notifications go to ``on_notification``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.on_notification: Callable[[str, dict[str, Any]], None] = lambda method, params: None
        self._pump = asyncio.get_running_loop().create_task(self._read())
        self.closed = asyncio.Event()

    async def _read(self) -> None:
        try:
            while True:
                line = await self._reader.readline()
                if not line:
                    break
                message = framing.decode(line)
                if "method" in message and "id" not in message:
                    self.on_notification(message["method"], message.get("params") or {})
                elif message.get("id") in self._pending:
                    self._pending.pop(message["id"]).set_result(message)
        finally:
            self.closed.set()
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(DaemonUnreachable("the daemon closed the connection"))

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The whole reply (``result`` or ``error``)."""
        if self.closed.is_set():
            raise DaemonUnreachable("the connection is closed")
        req_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = future
        self._writer.write(framing.encode({"jsonrpc": "2.0", "id": req_id, "method": method, "params": params or {}}))
        await self._writer.drain()
        return await future

    async def close(self) -> None:
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except OSError:
            pass
        self._pump.cancel()


async def connect(path: Path) -> RpcConnection | None:
    """A connection to the daemon on ``path``, or None when none listens there.

    Raises DaemonUnreachable when what listens there is another user's process: prompts are
    private, so a socket planted in a shared folder is never talked to.
    """
    try:
        reader, writer = await asyncio.open_unix_connection(os.fsencode(path), limit=framing.MAX_REPLY_BYTES)
    except (ConnectionRefusedError, FileNotFoundError, NotADirectoryError, PermissionError):
        return None
    uid = peer_uid(writer.get_extra_info("socket"))
    if uid != os.getuid():
        writer.close()
        raise DaemonUnreachable(f"{path} is served by uid {uid}, not by this user ({os.getuid()}); not using it")
    return RpcConnection(reader, writer)


def daemon_command(path: Path) -> list[str]:
    return [sys.executable, "-m", "lofi_daemon", "--socket", str(path)]


def spawn_detached(path: Path, env: Mapping[str, str] | None = None, stderr_file: Path | None = None,
                   extra_args: list[str] | None = None) -> subprocess.Popen[bytes]:
    """Start a daemon in its own session: it outlives the client that started it."""
    err = open(stderr_file, "ab") if stderr_file else subprocess.DEVNULL
    try:
        return subprocess.Popen(daemon_command(path) + (extra_args or []), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err, env=dict(env or os.environ),
                                start_new_session=True, close_fds=True)
    finally:
        if stderr_file:
            err.close()  # type: ignore[union-attr]


async def connect_or_spawn(path: Path, env: Mapping[str, str] | None = None, *, stderr_file: Path | None = None,
                           extra_args: list[str] | None = None, wait_sec: float = SPAWN_WAIT_SEC) -> RpcConnection:
    conn = await connect(path)
    if conn is not None:
        return conn
    ensure_private_dir(path.parent)
    loop = asyncio.get_running_loop()
    lock = SpawnLock(path)
    await loop.run_in_executor(None, lock.__enter__)
    try:
        conn = await connect(path)  # the client before us may have started it meanwhile
        if conn is not None:
            return conn
        proc = spawn_detached(path, env, stderr_file, extra_args)
        deadline = time.monotonic() + wait_sec
        while time.monotonic() < deadline:
            conn = await connect(path)
            if conn is not None:
                return conn
            code = proc.poll()
            if code not in (None, 0):
                raise DaemonUnreachable(f"the daemon exited with code {code} before it listened on {path}")
            await asyncio.sleep(0.02)
        raise DaemonUnreachable(f"no daemon listening on {path} after {wait_sec:g} s")
    finally:
        lock.__exit__()
