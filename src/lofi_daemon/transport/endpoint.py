"""One way for the ``lofi`` CLI to call methods, whether a daemon runs or not.

``Remote`` talks to the user's running shared daemon over its socket (a track made there
shows up in every editor, and uses the model already loaded); ``InProcess`` serves the calls
with a local service made in this process when no daemon runs. The caller (the CLI) passes
the function that builds it, so the transport never knows how the application is composed. Both answer ``call`` with the
result or raise the LofiError the daemon sent, and hand notifications to
``on_notification``, so a command is written once for both.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Any, Callable, Protocol

from .. import PROTOCOL_VERSION
from ..errors import ErrorCode, LofiError
from ..rpc.dispatch import Dispatcher
from ..settings import Settings
from .client import RpcConnection, connect
from .paths import default_socket_path

OnNotification = Callable[[str, dict[str, Any]], None]


class LocalService(Protocol):
    """What ``InProcess`` needs of the application it runs: the daemon's ``App`` fits."""

    def start(self) -> None: ...

    def dispatcher(self) -> Dispatcher: ...

    async def close(self) -> None: ...


MakeLocalService = Callable[[OnNotification], LocalService]


def error_from_reply(error: dict[str, Any]) -> LofiError:
    data = dict(error.get("data") or {})
    data.pop("error_code", None)
    hint = data.pop("hint", None)
    try:
        code = ErrorCode(error.get("code"))
    except ValueError:
        code = ErrorCode.INTERNAL_ERROR
    return LofiError(str(error.get("message", "error")), code=code, hint=hint, **data)


class Endpoint:
    remote = False
    description = ""

    def __init__(self) -> None:
        self.on_notification: OnNotification = lambda method, params: None

    def _notify(self, method: str, params: dict[str, Any]) -> None:
        self.on_notification(method, params)

    async def call(self, method: str, **params: Any) -> Any:
        raise NotImplementedError

    async def close(self) -> None:
        pass


class InProcess(Endpoint):
    description = "in-process"

    def __init__(self, make_service: MakeLocalService) -> None:
        super().__init__()
        self.app = make_service(self._notify)
        self.app.start()
        self._dispatcher = self.app.dispatcher()
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> Any:
        reply = await self._dispatcher.handle({"jsonrpc": "2.0", "id": next(self._ids), "method": method,
                                              "params": params})
        assert isinstance(reply, dict)
        if "error" in reply:
            raise error_from_reply(reply["error"])
        return reply["result"]

    async def close(self) -> None:
        await self.app.close()


class Remote(Endpoint):
    remote = True

    def __init__(self, conn: RpcConnection, path: Path) -> None:
        super().__init__()
        self.conn = conn
        self.path = path
        self.description = f"the daemon on {path}"
        conn.on_notification = self._notify

    async def call(self, method: str, **params: Any) -> Any:
        reply = await self.conn.request(method, params)
        if "error" in reply:
            raise error_from_reply(reply["error"])
        return reply["result"]

    async def close(self) -> None:
        await self.conn.close()


async def open_endpoint(settings: Settings, make_service: MakeLocalService, *, in_process: bool = False) -> Endpoint:
    """The running shared daemon when there is one, else ``make_service(notify)`` in this process."""
    if not in_process:
        path = default_socket_path(settings.cache_dir)
        conn = await connect(path)
        if conn is not None:
            remote = Remote(conn, path)
            pong = await remote.call("ping")
            if pong.get("protocol") == PROTOCOL_VERSION:
                return remote
            await remote.close()
            print(f"lofi: the running daemon speaks protocol {pong.get('protocol')}, this lofi speaks "
                  f"{PROTOCOL_VERSION}; working in-process instead", file=sys.stderr)
    return InProcess(make_service)
