"""JSON-RPC 2.0 dispatch: message -> handler -> response. Knows methods and errors, not I/O.

Handles single requests, notifications (no ``id``: no reply), and batches (a list; one
reply list, without entries for notifications; an empty batch is an invalid request).
"""

from __future__ import annotations

import logging
import math
from typing import Any, Awaitable, Callable

from ..errors import ErrorCode, LofiError
from . import framing
from .params import Params, parse

log = logging.getLogger(__name__)

Handler = Callable[[Any], Awaitable[Any]]


def error_response(req_id: Any, error: LofiError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": req_id, "error": error.to_rpc()}


def protocol_error(req_id: Any, code: ErrorCode, message: str) -> dict[str, Any]:
    return error_response(req_id, LofiError(message, code=code))


class Dispatcher:
    def __init__(self) -> None:
        self._methods: dict[str, tuple[type[Params], Handler]] = {}

    def register(self, name: str, params: type[Params], handler: Handler) -> None:
        self._methods[name] = (params, handler)

    @property
    def methods(self) -> list[str]:
        return sorted(self._methods)

    async def handle(self, message: Any) -> dict[str, Any] | list[dict[str, Any]] | None:
        """Reply for one decoded message (request, notification or batch); None = no reply."""
        if isinstance(message, list):
            if not message:
                return protocol_error(None, ErrorCode.INVALID_REQUEST, "empty batch")
            # Each request is answered on its own merits: one reply that cannot be encoded
            # is replaced by its own error instead of costing the whole batch its replies.
            replies = [_sendable(r) for r in [await self._handle_one(m) for m in message] if r is not None]
            return replies or None
        return await self._handle_one(message)

    async def _handle_one(self, msg: Any) -> dict[str, Any] | None:
        if not isinstance(msg, dict):
            return protocol_error(None, ErrorCode.INVALID_REQUEST, "a request must be a JSON object")
        req_id = msg.get("id")
        if not _valid_id(req_id):
            return protocol_error(None, ErrorCode.INVALID_REQUEST, "id must be a string, number or null")
        is_notification = "id" not in msg
        method = msg.get("method")
        if msg.get("jsonrpc") != "2.0" or not isinstance(method, str):
            return protocol_error(req_id, ErrorCode.INVALID_REQUEST,
                                  'a request needs "jsonrpc": "2.0" and a string "method"')
        extra = set(msg) - {"jsonrpc", "id", "method", "params"}
        if extra:
            return protocol_error(req_id, ErrorCode.INVALID_REQUEST,
                                  f"unknown member(s) in request: {', '.join(sorted(extra))}")
        entry = self._methods.get(method)
        try:
            if entry is None:
                raise LofiError(f"method not found: {method}", code=ErrorCode.METHOD_NOT_FOUND,
                                hint=f"Methods: {', '.join(self.methods)}.")
            params_model, handler = entry
            result = await handler(parse(params_model, msg.get("params")))
        except LofiError as exc:
            return None if is_notification else error_response(req_id, exc)
        except Exception as exc:  # a bug in a handler must not kill the daemon
            log.exception("internal error in %s", method)
            err = LofiError(f"internal error: {type(exc).__name__}: {exc}", code=ErrorCode.INTERNAL_ERROR)
            return None if is_notification else error_response(req_id, err)
        return None if is_notification else {"jsonrpc": "2.0", "id": req_id, "result": result}


def _sendable(reply: dict[str, Any]) -> dict[str, Any]:
    try:
        framing.encode(reply)
        return reply
    except (ValueError, TypeError) as exc:  # e.g. NaN in a result
        log.error("cannot encode the reply to id %.80r (%s)", reply.get("id"), exc)
        return protocol_error(reply.get("id"), ErrorCode.INTERNAL_ERROR,
                              "internal error: the reply could not be encoded")


def _valid_id(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)  # 1e400 parses as inf, which no reply could carry back
    return value is None or (isinstance(value, (str, int)) and not isinstance(value, bool))
