"""Lines <-> messages. Knows bytes and newlines, nothing about methods.

Input arrives in arbitrary chunks; ``LineSplitter`` keeps the partial line between chunks
and caps a runaway line while it streams: the bytes past the cap are dropped as they arrive,
so an over-long line is never held whole, and it is answered once (``LineTooLong``).

Outbound, ``clip`` caps one foreign string (an exception text, a file name, a sink's stderr)
where it enters a message, and ``encode_bounded`` shortens the strings of a message the
daemon made itself until it fits a size, so no single message can outgrow a client's outbox.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import CLIP_CHARS, clip

DEFAULT_MAX_LINE_BYTES = 1 << 20  # no request of this protocol needs more than a few KB
MAX_REPLY_BYTES = 64 << 20  # what a client accepts from the daemon (a long track list)
MAX_MESSAGE_BYTES = 2 << 20  # one outbound message; its strings are shortened to fit (encode_bounded)


class LineTooLong(Exception):
    pass


class LineSplitter:
    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self._buf = bytearray()
        self._max = max_line_bytes
        self._discarding = False  # inside an over-long line: drop bytes until its newline

    def feed(self, chunk: bytes) -> list[bytes | LineTooLong]:
        """Return the complete lines in ``chunk`` (without ``\\n``), or a LineTooLong marker."""
        out: list[bytes | LineTooLong] = []
        start = 0
        while True:
            nl = chunk.find(b"\n", start)
            if nl < 0:
                break
            if self._discarding:
                self._discarding = False
            elif len(self._buf) + nl - start > self._max:  # too long although it ends in this chunk
                out.append(self._too_long())
            else:
                self._buf += chunk[start:nl]
                out.append(bytes(self._buf).rstrip(b"\r"))
            self._buf = bytearray()  # a new buffer: a huge one's memory goes back at once
            start = nl + 1
        if not self._discarding and start < len(chunk):
            if len(self._buf) + len(chunk) - start > self._max:
                self._buf = bytearray()
                self._discarding = True
                out.append(self._too_long())
            else:
                self._buf += chunk[start:]
        return out

    @property
    def buffered(self) -> int:
        """Bytes of a partial line held now (at most the cap)."""
        return len(self._buf)

    def _too_long(self) -> LineTooLong:
        return LineTooLong(f"line longer than {self._max} bytes (the daemon's max_line_bytes); it was discarded")

    def tail(self) -> bytes:
        """What is left without a final newline (a last line at EOF)."""
        return bytes(self._buf)


def encode(message: dict[str, Any] | list[dict[str, Any]]) -> bytes:
    """One compact JSON value (a message or a batch reply) and a newline.

    ASCII with ``\\u`` escapes: any string a request decoded to (a lone surrogate included,
    which has no UTF-8 form) can be sent back, so one odd string never costs a reply.
    """
    return json.dumps(message, ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode("ascii") + b"\n"


def encode_bounded(message: dict[str, Any], limit: int = MAX_MESSAGE_BYTES) -> bytes:
    """``encode(message)``, with its strings clipped shorter and shorter until it fits ``limit``.

    For messages the daemon makes itself (notifications, replies): a big foreign string in one
    of them costs its tail, never the client its connection.
    """
    data = encode(message)
    chars = CLIP_CHARS
    while len(data) > limit and chars >= 16:
        data = encode(_clip_strings(message, chars))
        chars //= 4
    if len(data) > limit:  # a huge structure, not a long string: say so instead
        data = encode({k: message[k] for k in ("jsonrpc", "id", "method") if k in message}
                      | _too_big_body(message, len(data)))
    return data


def _clip_strings(value: Any, chars: int) -> Any:
    if isinstance(value, str):
        return clip(value, chars)
    if isinstance(value, dict):
        return {k: _clip_strings(v, chars) for k, v in value.items()}
    if isinstance(value, list):
        return [_clip_strings(v, chars) for v in value]
    return value


def _too_big_body(message: dict[str, Any], size: int) -> dict[str, Any]:
    error = {"code": -32603, "message": f"the daemon's message was too big to send ({size} bytes)"}
    if "method" in message:
        return {"params": {"truncated": True, "message": error["message"]}}
    return {"error": error}


def decode(line: bytes) -> Any:
    """Parse one line; raises ValueError (incl. UnicodeDecodeError) on bad input."""
    text = line.decode("utf-8")  # strict: invalid UTF-8 is a parse error, not mojibake
    return json.loads(text, parse_constant=_reject_constant)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
