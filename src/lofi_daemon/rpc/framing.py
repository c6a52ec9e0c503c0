"""Lines <-> messages. Knows bytes and newlines, nothing about methods.

Input arrives in arbitrary chunks; ``LineSplitter`` keeps the partial line between chunks
and caps a runaway line so one bad client cannot exhaust memory.
"""

from __future__ import annotations

import json
from typing import Any

MAX_LINE_BYTES = 64 * 1024 * 1024  # far above any real request; a 5 MB prompt line is fine


class LineTooLong(Exception):
    pass


class LineSplitter:
    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
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
            else:
                self._buf += chunk[start:nl]
                out.append(bytes(self._buf).rstrip(b"\r"))
            self._buf.clear()
            start = nl + 1
        if not self._discarding:
            self._buf += chunk[start:]
            if len(self._buf) > self._max:
                self._buf.clear()
                self._discarding = True
                out.append(LineTooLong(f"line longer than {self._max} bytes"))
        return out

    def tail(self) -> bytes:
        """What is left without a final newline (a last line at EOF)."""
        return bytes(self._buf)


def encode(message: dict[str, Any] | list[dict[str, Any]]) -> bytes:
    """One compact JSON value (a message or a batch reply) and a newline.

    ASCII with ``\\u`` escapes: any string a request decoded to (a lone surrogate included,
    which has no UTF-8 form) can be sent back, so one odd string never costs a reply.
    """
    return json.dumps(message, ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode("ascii") + b"\n"


def decode(line: bytes) -> Any:
    """Parse one line; raises ValueError (incl. UnicodeDecodeError) on bad input."""
    text = line.decode("utf-8")  # strict: invalid UTF-8 is a parse error, not mojibake
    return json.loads(text, parse_constant=_reject_constant)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
