"""``lofi-daemon``: the stdio JSON-RPC server the Neovim plugin spawns."""

from __future__ import annotations

import os

# Loading must never touch the network (weights come from the local store). huggingface_hub
# reads this once at import; downloads run in a worker process without it (models/worker.py).
os.environ["HF_HUB_OFFLINE"] = "1"

import asyncio
import logging
import signal
import sys
from typing import BinaryIO

from . import logs
from .app import App
from .rpc.server import Server
from .settings import Settings

log = logging.getLogger("lofi_daemon")


def protect_stdout() -> BinaryIO:
    """Keep a private handle on the real stdout and point fd 1 at stderr.

    Libraries that print (tqdm, warnings, C extensions writing to fd 1) then land in the log
    instead of corrupting a protocol message.
    """
    sys.stdout.flush()
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(protocol_fd, "wb", buffering=0)


async def serve(settings: Settings, reader: BinaryIO, writer: BinaryIO) -> int:
    server: Server | None = None

    def notify(method: str, params: dict) -> None:
        assert server is not None
        server.notify(method, params)

    app = App(settings, notify)
    server = Server(app.dispatcher(), reader, writer)
    app.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, server.stop)
        except (NotImplementedError, RuntimeError):  # not on Windows / not in the main thread
            pass

    serving = asyncio.ensure_future(server.serve())
    shutdown = asyncio.ensure_future(app.shutdown_requested.wait())
    await asyncio.wait({serving, shutdown}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if serving.done() and not serving.cancelled() and serving.exception() is not None:
        log.error("the server stopped on an error", exc_info=serving.exception())
        code = 1
    server.stop()
    await app.close()  # cancels the running job; its terminal notification still goes out
    await asyncio.sleep(0)  # let queued notifications reach the client
    for task in (serving, shutdown):
        task.cancel()
    log.info("daemon stopped")
    return code


def main() -> None:
    writer = protect_stdout()
    settings = Settings.load()
    try:
        settings.ensure_dirs()
    except OSError:
        pass
    logs.configure(settings.logs_dir)
    log.info("lofi-daemon starting (pid %d, cache %s)", os.getpid(), settings.cache_dir)
    code = asyncio.run(serve(settings, sys.stdin.buffer, writer))
    writer.close()
    # Daemon threads (stdin reader, downloads) must not keep the process alive.
    os._exit(code)


if __name__ == "__main__":
    main()
