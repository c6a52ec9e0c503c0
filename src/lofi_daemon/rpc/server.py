"""The stdio transport: read lines from one binary stream, write messages to another.

The streams are passed in (tests hand in pipes). A reader thread does the blocking reads
so any kind of stdin works (pipe, file, tty); the event loop only routes messages. Writes
are serialized and flushed per message.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, BinaryIO

from ..errors import ErrorCode
from . import framing
from .dispatch import Dispatcher, protocol_error

log = logging.getLogger(__name__)

READ_CHUNK = 1 << 20


class Server:
    def __init__(self, dispatcher: Dispatcher, reader: BinaryIO, writer: BinaryIO) -> None:
        self._dispatcher = dispatcher
        self._reader = reader
        self._writer = writer
        self._write_lock = threading.Lock()
        self._stop = asyncio.Event()

    # ----- output ----------------------------------------------------------------------------
    def send(self, message: dict[str, Any] | list[dict[str, Any]]) -> None:
        try:
            data = framing.encode(message)
        except (ValueError, TypeError) as exc:  # e.g. NaN in a payload: answer, never die
            log.error("cannot encode a message (%s): %.200r", exc, message)
            req_id = message.get("id") if isinstance(message, dict) else None
            data = framing.encode(protocol_error(req_id if _encodable(req_id) else None, ErrorCode.INTERNAL_ERROR,
                                                 "internal error: the reply could not be encoded"))
        with self._write_lock:
            try:
                self._writer.write(data)
                self._writer.flush()
            except (BrokenPipeError, ValueError, OSError) as exc:  # client went away
                log.warning("cannot write to client (%s); stopping", exc)
                self._stop.set()

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def stop(self) -> None:
        self._stop.set()

    # ----- input -----------------------------------------------------------------------------
    async def serve(self) -> None:
        """Read and answer until EOF on the reader or ``stop()``."""
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue()

        def read_forever() -> None:
            try:
                while True:
                    chunk = self._reader.read1(READ_CHUNK) if hasattr(self._reader, "read1") else self._reader.read(READ_CHUNK)
                    if not chunk:
                        break
                    loop.call_soon_threadsafe(chunks.put_nowait, chunk)
            except (OSError, ValueError) as exc:
                log.warning("stdin read failed: %s", exc)
            loop.call_soon_threadsafe(chunks.put_nowait, None)

        threading.Thread(target=read_forever, name="lofi-stdin", daemon=True).start()
        splitter = framing.LineSplitter()
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
                        await self._handle_line(splitter.tail())
                    break
                for line in splitter.feed(chunk):
                    if self._stop.is_set():
                        break
                    await self._handle_line(line)
        finally:
            stop_wait.cancel()

    async def _handle_line(self, line: bytes | framing.LineTooLong) -> None:
        if isinstance(line, framing.LineTooLong):
            self.send(protocol_error(None, ErrorCode.PARSE_ERROR, str(line)))
            return
        if not line.strip():
            return  # blank lines are keep-alives, not errors
        try:
            message = framing.decode(line)
        except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
            log.warning("unparseable line (%d bytes): %s", len(line), exc)
            self.send(protocol_error(None, ErrorCode.PARSE_ERROR, f"parse error: {type(exc).__name__}: {exc}"))
            return
        try:
            reply = await self._dispatcher.handle(message)
        except Exception:  # the dispatcher answers errors itself; this is the last guard
            log.exception("unexpected failure handling a message")
            reply = protocol_error(None, ErrorCode.INTERNAL_ERROR, "internal error: see the daemon log")
        if reply is not None:
            self.send(reply)


def _encodable(value: Any) -> bool:
    try:
        framing.encode({"id": value})
        return True
    except (ValueError, TypeError):
        return False
