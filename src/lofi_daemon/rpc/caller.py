"""What a request handler may know about the connection its request came from.

The transports set ``current_caller`` for the task that answers a connection's lines, so a
handler such as ``shutdown`` can end just the connection that asked, without knowing which
transport it came through.
"""

from __future__ import annotations

import contextvars
from typing import Protocol


class Caller(Protocol):
    shared: bool  # True when other clients share this daemon (socket); False for stdio

    def end_after_reply(self) -> None:
        """Close this connection once the current reply has been written."""


current_caller: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("lofi_caller", default=None)
