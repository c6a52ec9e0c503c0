"""The per-connection part both transports share: how a line is answered and a message encoded.

Both transports (stdio and socket) answer a line the same way (``answer_line``) and set
``rpc.caller.current_caller`` for the task that handles a connection's lines.
"""

from __future__ import annotations

import logging
from typing import Any

from ..errors import ErrorCode
from ..rpc import framing
from ..rpc.dispatch import Dispatcher, protocol_error

log = logging.getLogger(__name__)


def encode_safely(message: dict[str, Any] | list[dict[str, Any]], limit: int = framing.MAX_MESSAGE_BYTES) -> bytes:
    """One line for ``message`` of at most ``limit`` bytes (long strings shortened); a payload
    that cannot be encoded becomes an error reply."""
    try:
        if isinstance(message, dict):
            return framing.encode_bounded(message, limit)
        data = framing.encode(message)  # a batch reply: too big as a whole is one error
        if len(data) <= limit:
            return data
        return framing.encode(protocol_error(None, ErrorCode.INTERNAL_ERROR,
                                             f"the batch reply is {len(data)} bytes, over {limit}; "
                                             "send fewer requests per batch"))
    except (ValueError, TypeError) as exc:  # e.g. NaN in a payload: answer, never die
        log.error("cannot encode a message (%s): %.200r", exc, message)
        req_id = message.get("id") if isinstance(message, dict) else None
        return framing.encode(protocol_error(req_id if _encodable(req_id) else None, ErrorCode.INTERNAL_ERROR,
                                             "internal error: the reply could not be encoded"))


async def answer_line(dispatcher: Dispatcher, line: bytes | framing.LineTooLong) -> Any:
    """The reply to one input line (None: nothing to send)."""
    if isinstance(line, framing.LineTooLong):
        return protocol_error(None, ErrorCode.PARSE_ERROR, str(line))
    if not line.strip():
        return None  # blank lines are keep-alives, not errors
    try:
        message = framing.decode(line)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        log.warning("unparseable line (%d bytes): %s", len(line), exc)
        return protocol_error(None, ErrorCode.PARSE_ERROR, f"parse error: {type(exc).__name__}: {exc}")
    try:
        return await dispatcher.handle(message)
    except Exception:  # the dispatcher answers errors itself; this is the last guard
        log.exception("unexpected failure handling a message")
        return protocol_error(None, ErrorCode.INTERNAL_ERROR, "internal error: see the daemon log")


def _encodable(value: Any) -> bool:
    try:
        framing.encode({"id": value})
        return True
    except (ValueError, TypeError):
        return False
