"""A real ``SocketServer`` whose one method broadcasts a notification of a chosen size.

    python shout_server.py SOCKET_PATH OUTBOX_BYTES

``shout {chars}`` sends every client a ``shout`` notification carrying a string of ``chars``
characters (a stand-in for any foreign text, e.g. a sink's stderr line), then answers.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from pydantic import Field

from lofi_daemon.rpc.dispatch import Dispatcher
from lofi_daemon.rpc.params import Params
from lofi_daemon.transport.unix_socket import SocketServer


class ShoutParams(Params):
    chars: int = Field(ge=0)


async def main(path: Path, outbox_bytes: int) -> None:
    stop = asyncio.Event()
    dispatcher = Dispatcher()
    server = SocketServer(dispatcher, path, idle_exit_sec=60, on_idle=stop.set, outbox_bytes=outbox_bytes)

    async def shout(params: ShoutParams) -> dict[str, int]:
        server.broadcast("shout", {"message": "y" * params.chars, "stderr": "z" * params.chars})
        return {"clients": server.clients}

    dispatcher.register("shout", ShoutParams, shout)
    await server.start()
    await stop.wait()
    await server.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
