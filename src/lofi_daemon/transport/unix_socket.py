"""The listening socket: many clients, replies to the asker, notifications to everyone.

Each connection has a bounded outbox (asyncio's write buffer). While a client is not
reading, its requests are not read either (backpressure); a client whose unread output
passes ``outbox_bytes`` is disconnected with a log line, so it can never hold up the
daemon or the other clients. A message the daemon makes is encoded to at most half an
outbox (long strings shortened), so no single notification can disconnect a client that
reads. When the last client has been gone for ``idle_exit_sec`` the server calls
``on_idle`` (the daemon then exits).

Input is bounded three ways: a line longer than ``max_line_bytes`` is discarded as it
streams; a connection with ``PAUSE_READING_BYTES`` unanswered stops being read; and all
connections together hold at most ``max_buffered_bytes`` (a connection that would pass it is
paused until the others' lines are answered). Each connection answers one line per loop
turn, so a client pipelining thousands of commands cannot make another wait for them all.

The server accepts itself (not ``loop.create_unix_server``): when the process is out of
descriptors (EMFILE/ENFILE) it stops accepting for ``ACCEPT_BACKOFF_SEC``, counts the
refusal (``accept_refusals`` in ``daemon_info``) and logs at most one line a second; the
waiting connections stay in the backlog (``LISTEN_BACKLOG``) until descriptors free up.
"""

from __future__ import annotations

import asyncio
import contextvars
import errno
import itertools
import logging
import os
import socket
import stat
import time
from pathlib import Path
from typing import Any, Callable

from ..rpc import framing
from ..rpc.dispatch import Dispatcher
from .lock import LifeLock, lock_path
from .paths import check_socket_path, ensure_private_dir
from .peer import peer_pid, peer_uid
from ..rpc.caller import current_caller
from .session import answer_line, encode_safely

log = logging.getLogger(__name__)

DEFAULT_OUTBOX_BYTES = 4 * 1024 * 1024  # unread output a client may owe before it is dropped
PAUSE_READING_BYTES = 256 * 1024  # unanswered input (or unread output) that pauses reading
FIRST_CLIENT_GRACE_SEC = 10.0  # the client that started us needs a moment to connect
START_WAIT_SEC = 10.0  # how long a second daemon waits for the first one to become reachable
CLOSE_FLUSH_SEC = 2.0  # at exit, how long clients get to read their last notifications
DEFAULT_MAX_BUFFERED_BYTES = 64 << 20  # unanswered input held across all connections
LISTEN_BACKLOG = 1024  # a burst of editors starting at once (the kernel caps it at somaxconn)
ACCEPT_BURST = 64  # connections accepted per wake-up before other work gets a turn
ACCEPT_BACKOFF_SEC = 0.2  # out of descriptors: how long accepting pauses
RESOURCE_ERRNOS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class AlreadyServing(Exception):
    """Another live daemon serves this socket path."""


class LockHolderSilent(Exception):
    """A live process holds the life lock but nothing answers on the socket."""


class SocketServer:
    def __init__(self, dispatcher: Dispatcher, path: Path, *, idle_exit_sec: float,
                 on_idle: Callable[[], None], outbox_bytes: int = DEFAULT_OUTBOX_BYTES,
                 max_line_bytes: int = framing.DEFAULT_MAX_LINE_BYTES,
                 max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES) -> None:
        self.dispatcher = dispatcher
        self.path = path
        self.idle_exit_sec = idle_exit_sec
        self.outbox_bytes = outbox_bytes
        self.max_line_bytes = max_line_bytes
        self.max_buffered_bytes = max_buffered_bytes
        self.message_bytes = min(framing.MAX_MESSAGE_BYTES, outbox_bytes // 2)
        self.buffered = 0  # input bytes held by all connections (partial lines + unanswered)
        self._over_budget: set[Connection] = set()  # paused until ``buffered`` falls again
        self.accept_refusals = 0
        self._refusals_logged = 0
        self._last_refusal_log = 0.0
        self._listener: socket.socket | None = None
        self._accept_paused = False
        self._on_idle = on_idle
        self._lock = LifeLock(lock_path(path))
        self._connections: set[Connection] = set()
        self._ids = itertools.count(1)
        self._idle_timer: asyncio.TimerHandle | None = None
        self._inode: int | None = None
        self.started = time.time()

    @property
    def clients(self) -> int:
        return len(self._connections)

    # ----- start and stop --------------------------------------------------------------------
    async def start(self) -> None:
        """Take the life lock, replace a stale socket, listen. Raises AlreadyServing or
        LockHolderSilent; SocketPathTooLong, UnsafeSocketDir or UnsafeLockPath for a path that
        cannot be served safely."""
        check_socket_path(self.path)
        ensure_private_dir(self.path.parent)
        deadline = time.monotonic() + START_WAIT_SEC
        while not self._lock.try_acquire():
            # Another daemon holds the lock: it serves, or it is still starting, or exiting.
            if _connectable(self.path):
                raise AlreadyServing(f"a daemon (pid {self._lock.holder_pid()}) already serves {self.path}")
            if time.monotonic() > deadline:
                raise LockHolderSilent(f"pid {self._lock.holder_pid()} holds {self._lock.path} but does not answer")
            await asyncio.sleep(0.05)
        self._remove_leftover()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # the socket file is born 0600: no window where others may connect
        try:
            sock.bind(os.fsencode(self.path))
        finally:
            os.umask(old_umask)
        self._inode = os.lstat(self.path).st_ino
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
        self._listener = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._accept_ready)
        self.started = time.time()
        log.info("listening on %s (idle exit after %g s)", self.path, self.idle_exit_sec)
        self._arm_idle(max(self.idle_exit_sec, FIRST_CLIENT_GRACE_SEC))

    def _remove_leftover(self) -> None:
        """We hold the life lock, so whatever sits at the socket path is not a live daemon's."""
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if stat.S_ISSOCK(st.st_mode):
            log.info("replacing the stale socket %s", self.path)
        else:  # a planted symlink or file: unlink removes the link itself, never its target
            log.warning("removing a non-socket at the socket path %s (mode %o)", self.path, st.st_mode)
        os.unlink(self.path)

    async def close(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        if self._listener is not None:
            if not self._accept_paused:
                asyncio.get_running_loop().remove_reader(self._listener.fileno())
            self._accept_paused = True
            self._listener.close()
        try:  # unlink only our own socket (a successor may already have bound a new one)
            if self._inode is not None and os.lstat(self.path).st_ino == self._inode:
                os.unlink(self.path)
        except OSError:
            pass
        for conn in list(self._connections):
            conn.close()  # flushes what is buffered first
        deadline = time.monotonic() + CLOSE_FLUSH_SEC
        while self._connections and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for conn in list(self._connections):  # a client that never reads is not waited for
            conn.abort()
        self._lock.release()

    # ----- accepting -------------------------------------------------------------------------
    def _accept_ready(self) -> None:
        assert self._listener is not None
        loop = asyncio.get_running_loop()
        for _ in range(ACCEPT_BURST):
            try:
                conn_sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno in RESOURCE_ERRNOS:
                    self._refuse_for_now(exc)
                else:
                    log.warning("accept failed: %s", exc)
                return
            conn_sock.setblocking(False)
            loop.create_task(self._adopt(conn_sock))

    def _refuse_for_now(self, exc: OSError) -> None:
        """Out of descriptors: stop accepting for a moment (the kernel keeps the backlog)."""
        assert self._listener is not None
        self.accept_refusals += 1
        now = time.monotonic()
        if now - self._last_refusal_log >= 1.0:
            log.warning("cannot accept connections: %s (%d refusal(s) so far; raise the limit with ulimit -n); "
                        "retrying every %g s", exc.strerror, self.accept_refusals, ACCEPT_BACKOFF_SEC)
            self._last_refusal_log = now
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._listener.fileno())
        self._accept_paused = True
        loop.call_later(ACCEPT_BACKOFF_SEC, self._resume_accepting)

    def _resume_accepting(self) -> None:
        if self._listener is None or self._listener.fileno() < 0 or not self._accept_paused:
            return
        self._accept_paused = False
        asyncio.get_running_loop().add_reader(self._listener.fileno(), self._accept_ready)

    async def _adopt(self, conn_sock: socket.socket) -> None:
        try:
            await asyncio.get_running_loop().connect_accepted_socket(lambda: Connection(self), conn_sock)
        except OSError as exc:  # e.g. EMFILE while setting it up: this client must retry
            log.warning("could not set up an accepted connection: %s", exc)
            conn_sock.close()

    # ----- input budget ----------------------------------------------------------------------
    def held_changed(self, conn: "Connection", delta: int) -> None:
        """``conn`` holds ``delta`` more (or fewer) input bytes; pause or resume by the budget."""
        self.buffered += delta
        if delta > 0 and self.buffered > self.max_buffered_bytes:
            self._over_budget.add(conn)
            conn.update_reading()
        elif delta < 0 and self._over_budget and self.buffered <= self.max_buffered_bytes:
            waiting, self._over_budget = self._over_budget, set()
            for other in waiting:
                other.update_reading()

    def over_budget(self, conn: "Connection") -> bool:
        return conn in self._over_budget

    # ----- clients ---------------------------------------------------------------------------
    def next_id(self) -> int:
        return next(self._ids)

    def added(self, conn: "Connection") -> None:
        self._connections.add(conn)
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def removed(self, conn: "Connection") -> None:
        self._over_budget.discard(conn)
        if conn in self._connections:
            self._connections.discard(conn)
            if not self._connections:
                self._arm_idle(self.idle_exit_sec)

    def _arm_idle(self, seconds: float) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._idle_timer = asyncio.get_running_loop().call_later(seconds, self._idle_expired)

    def _idle_expired(self) -> None:
        self._idle_timer = None
        if not self._connections:
            log.info("no client for %g s; exiting", self.idle_exit_sec)
            self._on_idle()

    def broadcast(self, method: str, params: dict[str, Any]) -> None:
        """A notification for every client, encoded once."""
        data = encode_safely({"jsonrpc": "2.0", "method": method, "params": params}, self.message_bytes)
        for conn in list(self._connections):
            conn.send_bytes(data)

    def info(self) -> dict[str, Any]:
        return {"transport": "socket", "socket_path": str(self.path), "clients": self.clients,
                "idle_exit_sec": self.idle_exit_sec, "accept_refusals": self.accept_refusals,
                "max_line_bytes": self.max_line_bytes, "buffered_bytes": self.buffered}


class Connection(asyncio.Protocol):
    """One client. Lines are answered in order by one task; replies go only here."""

    shared = True

    def __init__(self, server: SocketServer) -> None:
        self.server = server
        self.id = server.next_id()
        self.transport: asyncio.Transport | None = None
        self._splitter = framing.LineSplitter(server.max_line_bytes)
        self._lines: asyncio.Queue[bytes | framing.LineTooLong | None] = asyncio.Queue()
        self._unanswered = 0  # bytes read but not yet answered
        self._held = 0  # what this connection counts in the server's input budget
        self._write_paused = False
        self._writable = asyncio.Event()  # clear while the client is behind: answer nothing more
        self._writable.set()
        self._reading_paused = False
        self._ending = False
        self._task: asyncio.Task[None] | None = None
        self.peer_pid: int | None = None

    # ----- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        try:
            uid = peer_uid(sock)
            self.peer_pid = peer_pid(sock)
        except OSError as exc:
            uid = None
            log.warning("cannot read the peer credentials of a connection: %s", exc)
        if uid != os.getuid():
            log.warning("refused a connection from uid %s (pid %s): only uid %d may use this daemon",
                        uid, self.peer_pid, os.getuid())
            transport.write(framing.encode({"jsonrpc": "2.0", "id": None, "error": {
                "code": -32600, "message": "connection refused: this daemon serves another user"}}))
            transport.close()
            return
        # A small kernel buffer keeps "how far behind" mostly in our outbox, where we can see it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, min(self.server.outbox_bytes, 256 * 1024))
        transport.set_write_buffer_limits(high=PAUSE_READING_BYTES)
        self.server.added(self)
        log.info("client %d connected (pid %s); %d client(s)", self.id, self.peer_pid, self.server.clients)
        ctx = contextvars.copy_context()
        ctx.run(current_caller.set, self)
        self._task = asyncio.get_running_loop().create_task(self._answer_lines(), name=f"lofi-client-{self.id}",
                                                            context=ctx)

    def data_received(self, data: bytes) -> None:
        for line in self._splitter.feed(data):
            self._unanswered += len(line) if isinstance(line, bytes) else 0
            self._lines.put_nowait(line)
        self._account()
        self.update_reading()

    def _account(self) -> None:
        held = self._unanswered + self._splitter.buffered
        if held != self._held:
            delta, self._held = held - self._held, held
            self.server.held_changed(self, delta)

    def eof_received(self) -> bool:
        tail = self._splitter.tail()
        if tail.strip():
            self._lines.put_nowait(tail)
        self._lines.put_nowait(None)
        return True  # keep the write side open until the last reply has gone out

    def connection_lost(self, exc: Exception | None) -> None:
        self._writable.set()
        was_client = self in self.server._connections
        self.server.removed(self)
        self._lines.put_nowait(None)
        self._splitter = framing.LineSplitter(self.server.max_line_bytes)  # a partial line goes now
        self._unanswered = 0
        self._account()
        if self._task is not None:
            self._task.cancel()
        if was_client:
            log.info("client %d disconnected; %d client(s) left", self.id, self.server.clients)

    def pause_writing(self) -> None:
        self._write_paused = True
        self._writable.clear()
        self.update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._writable.set()
        self.update_reading()

    # ----- sending ---------------------------------------------------------------------------
    def send_bytes(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        behind = transport.get_write_buffer_size()
        if behind + len(data) > self.server.outbox_bytes:
            log.warning("client %d (pid %s) is %d bytes behind and not reading; disconnecting it",
                        self.id, self.peer_pid, behind)
            transport.abort()
            return
        transport.write(data)

    def end_after_reply(self) -> None:
        self._ending = True

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()  # flushes what is buffered, then closes

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # ----- answering -------------------------------------------------------------------------
    async def _answer_lines(self) -> None:
        while True:
            line = await self._lines.get()
            if line is None:
                break
            await self._writable.wait()  # a client that reads nothing gets no more replies queued
            reply = await answer_line(self.server.dispatcher, line)
            if isinstance(line, bytes):
                self._unanswered -= len(line)
            del line  # a big line's memory goes back before the next one is awaited
            if reply is not None:
                self.send_bytes(encode_safely(reply, self.server.message_bytes))
            self._account()
            self.update_reading()
            if self._ending:
                break
            await asyncio.sleep(0)  # one line per loop turn: the other clients get theirs
        self.close()

    def update_reading(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        pause = self._write_paused or self._unanswered > PAUSE_READING_BYTES or self.server.over_budget(self)
        if pause and not self._reading_paused:
            transport.pause_reading()
            self._reading_paused = True
        elif not pause and self._reading_paused:
            transport.resume_reading()
            self._reading_paused = False


def _connectable(path: Path) -> bool:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(1.0)
    try:
        sock.connect(os.fsencode(path))
        return True
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT, errno.ENOTSOCK, errno.EACCES, errno.ETIMEDOUT,
                             errno.EAGAIN):
            log.debug("probe of %s: %s", path, exc)
        return False
    finally:
        sock.close()
