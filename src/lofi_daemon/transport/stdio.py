"""The stdio transport: read lines from one binary stream, write messages to another.

The streams are passed in (tests hand in pipes). Two threads do the blocking I/O so any
kind of stream works (pipe, file, tty) and the event loop never blocks:

* the writer thread owns the output. It writes one whole message at a time and retries
  partial writes, so a signal or a full pipe can delay a line but never split one or glue
  the next message onto half of it;
* the reader thread stops reading while the outbox holds more than ``PAUSE_READING_BYTES``
  (a client that sends but does not read), so input is never buffered without limit.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import os
import threading
from typing import Any, BinaryIO

from ..rpc import framing
from ..rpc.caller import current_caller
from ..rpc.dispatch import Dispatcher
from .session import answer_line, encode_safely

log = logging.getLogger(__name__)

READ_CHUNK = 256 * 1024
PAUSE_READING_BYTES = 1 << 20  # unwritten output that stops reading more requests
CHUNKS_IN_FLIGHT = 4  # read chunks waiting for the loop
WRITE_BATCH_BYTES = 256 * 1024  # queued messages joined into one write


class Outbox:
    """Encoded messages waiting for the writer thread; each one is written whole."""

    def __init__(self, writer: BinaryIO, on_broken: Any = None) -> None:
        self._writer = writer
        self._on_broken = on_broken or (lambda: None)
        self._queue: collections.deque[bytes] = collections.deque()
        self._bytes = 0
        self._cond = threading.Condition()
        self._closed = False
        self.broken = threading.Event()  # the client went away
        self._thread = threading.Thread(target=self._run, name="lofi-stdout", daemon=True)
        self._thread.start()

    @property
    def pending_bytes(self) -> int:
        return self._bytes

    def put(self, data: bytes) -> None:
        with self._cond:
            if self._closed or self.broken.is_set():
                return
            self._queue.append(data)
            self._bytes += len(data)
            self._cond.notify_all()

    def wait_below(self, limit: int, timeout: float | None = None) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._bytes <= limit or self.broken.is_set(), timeout)

    def close(self, timeout: float) -> bool:
        """Write what is queued (up to ``timeout`` s); True when everything went out."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            fd: int | None = self._writer.fileno()
        except (AttributeError, OSError, ValueError):  # a file-like object without a descriptor (tests)
            fd = None
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._closed)
                if not self._queue:
                    return
                # Everything queued so far in one write: whole messages, fewer wake-ups.
                count, size = 0, 0
                for item in self._queue:
                    if count and size + len(item) > WRITE_BATCH_BYTES:
                        break
                    count, size = count + 1, size + len(item)
                data = b"".join(itertools.islice(self._queue, count))
            try:
                self._write_all(fd, data)
            except (OSError, ValueError) as exc:  # client went away
                log.warning("cannot write to client (%s); stopping", exc)
                with self._cond:
                    self._queue.clear()
                    self._bytes = 0
                    self.broken.set()
                    self._cond.notify_all()
                self._on_broken()
                return
            with self._cond:
                for _ in range(count):
                    self._queue.popleft()
                self._bytes -= len(data)
                self._cond.notify_all()

    def _write_all(self, fd: int | None, data: bytes) -> None:
        if fd is None:
            self._writer.write(data)
            self._writer.flush()
            return
        view = memoryview(data)
        while view:
            written = os.write(fd, view)  # may be partial (a signal, a full pipe): go on
            view = view[written:]


class StdioServer:
    shared = False  # the only client: ending its connection ends the daemon

    def __init__(self, dispatcher: Dispatcher, reader: BinaryIO, writer: BinaryIO, *,
                 max_line_bytes: int = framing.DEFAULT_MAX_LINE_BYTES) -> None:
        self._dispatcher = dispatcher
        self.max_line_bytes = max_line_bytes
        self._reader = reader
        self._outbox = Outbox(writer, on_broken=self._stop_threadsafe)
        self._stop = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    # ----- output ----------------------------------------------------------------------------
    def send(self, message: dict[str, Any] | list[dict[str, Any]]) -> None:
        self._outbox.put(encode_safely(message))

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def stop(self) -> None:
        self._stop.set()

    def _stop_threadsafe(self) -> None:
        if self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:  # the loop is already closed
                pass

    def end_after_reply(self) -> None:
        self._stop.set()

    def flush(self, timeout: float = 5.0) -> bool:
        """Write out what is queued before the process exits (at most ``timeout`` s)."""
        return self._outbox.close(timeout)

    def info(self) -> dict[str, Any]:
        return {"transport": "stdio", "socket_path": None, "clients": 1, "max_line_bytes": self.max_line_bytes}

    # ----- input -----------------------------------------------------------------------------
    async def serve(self) -> None:
        """Read and answer until EOF on the reader, ``stop()``, or a broken output."""
        current_caller.set(self)
        loop = self._loop = asyncio.get_running_loop()
        if self._outbox.broken.is_set():
            return
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=CHUNKS_IN_FLIGHT)
        outbox = self._outbox

        def hand_over(chunk: bytes | None) -> None:
            asyncio.run_coroutine_threadsafe(chunks.put(chunk), loop).result()

        def read_forever() -> None:
            try:
                while True:
                    outbox.wait_below(PAUSE_READING_BYTES)  # the client is not reading: neither do we
                    chunk = self._reader.read1(READ_CHUNK) if hasattr(self._reader, "read1") else self._reader.read(READ_CHUNK)
                    if not chunk:
                        break
                    hand_over(chunk)
            except (OSError, ValueError) as exc:
                log.warning("stdin read failed: %s", exc)
            except RuntimeError:  # the loop is gone (daemon stopping)
                return
            try:
                hand_over(None)
            except RuntimeError:
                pass

        threading.Thread(target=read_forever, name="lofi-stdin", daemon=True).start()
        splitter = framing.LineSplitter(self.max_line_bytes)  # discards a runaway line as it streams
        stop_wait = asyncio.ensure_future(self._stop.wait())
        try:
            while not self._stop.is_set():
                get = asyncio.ensure_future(chunks.get())
                done, _ = await asyncio.wait({get, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                if get not in done:
                    get.cancel()
                    break
                chunk = get.result()
                if chunk is None:  # EOF: answer a last unterminated line, then stop
                    if splitter.tail().strip():
                        await self._answer(splitter.tail())
                    break
                for line in splitter.feed(chunk):
                    if self._stop.is_set() or outbox.broken.is_set():
                        break
                    await self._answer(line)
        finally:
            stop_wait.cancel()

    async def _answer(self, line: bytes | framing.LineTooLong) -> None:
        reply = await answer_line(self._dispatcher, line)
        if reply is not None:
            self.send(reply)
