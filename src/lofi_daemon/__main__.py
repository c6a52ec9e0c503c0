"""``lofi-daemon``: the JSON-RPC server of lofi.nvim.

    lofi-daemon                 stdio: one client on stdin/stdout (what daemon_cmd runs)
    lofi-daemon --socket [PATH] a unix socket shared by every editor and the CLI
    lofi-daemon --print-socket  print the default socket path and exit

A path that cannot be served safely (a socket dir that is a symlink, a file or another
user's; a directory, symlink or FIFO at the lock path; a socket path too long for
``sun_path``) is refused with one line and a hint on stderr, exit code 2, not a traceback.
"""

from __future__ import annotations

import os

# Loading must never touch the network (weights come from the local store). huggingface_hub
# reads this once at import; downloads run in a worker process without it (models/worker.py).
os.environ["HF_HUB_OFFLINE"] = "1"

import argparse
import asyncio
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

from . import logs
from .app import App
from .rpc import framing
from .transport.stdio import StdioServer
from .settings import Settings

log = logging.getLogger("lofi_daemon")

DEFAULT_IDLE_EXIT_SEC = 30.0
REFUSED_EXIT = 2


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


def _on_signals(callback: Any) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, callback)
        except (NotImplementedError, RuntimeError):  # not on Windows / not in the main thread
            pass


async def _until_stopped(app: App, serving: "asyncio.Future[Any]") -> int:
    shutdown = asyncio.ensure_future(app.shutdown_requested.wait())
    await asyncio.wait({serving, shutdown}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if serving.done() and not serving.cancelled() and serving.exception() is not None:
        log.error("the server stopped on an error", exc_info=serving.exception())
        code = 1
    shutdown.cancel()
    return code


async def serve(settings: Settings, reader: BinaryIO, writer: BinaryIO,
                max_line_bytes: int = framing.DEFAULT_MAX_LINE_BYTES) -> int:
    """stdio: serve one client until EOF, ``shutdown`` or a signal."""
    server: StdioServer | None = None

    def notify(method: str, params: dict) -> None:
        assert server is not None
        server.notify(method, params)

    app = App(settings, notify)
    server = StdioServer(app.dispatcher(), reader, writer, max_line_bytes=max_line_bytes)
    app.transport_info = server.info
    app.start()
    _on_signals(server.stop)
    serving = asyncio.ensure_future(server.serve())
    code = await _until_stopped(app, serving)
    server.stop()
    await app.close()  # cancels the running job; its terminal notification still goes out
    await asyncio.sleep(0)  # let queued notifications reach the outbox
    serving.cancel()
    server.flush(timeout=5.0)  # whole messages only; a client that never reads is not waited for
    log.info("daemon stopped")
    return code


async def serve_socket(settings: Settings, path: Path, idle_exit_sec: float, outbox_bytes: int | None,
                       max_line_bytes: int = framing.DEFAULT_MAX_LINE_BYTES) -> int:
    """A unix socket for every client of this user, until idle, ``shutdown {force}`` or a signal."""
    from .transport.lock import UnsafeLockPath
    from .transport.paths import SocketPathTooLong, UnsafeSocketDir
    from .transport.unix_socket import DEFAULT_OUTBOX_BYTES, AlreadyServing, LockHolderSilent, SocketServer

    server: SocketServer | None = None

    def notify(method: str, params: dict) -> None:
        if server is not None:
            server.broadcast(method, params)

    app = App(settings, notify)
    server = SocketServer(app.dispatcher(), path, idle_exit_sec=idle_exit_sec,
                          on_idle=app.shutdown_requested.set, outbox_bytes=outbox_bytes or DEFAULT_OUTBOX_BYTES,
                          max_line_bytes=max_line_bytes)
    try:
        await server.start()
    except SocketPathTooLong as exc:
        return refuse(str(exc), "pick a shorter --socket path (or $LOFI_SOCKET)")
    except UnsafeSocketDir as exc:
        return refuse(f"unsafe socket directory: {exc.strerror or exc}",
                      "remove it, or point $XDG_RUNTIME_DIR / $LOFI_SOCKET at a directory only you own")
    except UnsafeLockPath as exc:
        return refuse(f"unsafe lock file: {exc.strerror or exc}",
                      "remove it; the daemon creates its lock as a plain file of its own")
    except OSError as exc:  # e.g. EACCES binding in a folder we may not write
        return refuse(f"cannot listen on {path}: {exc.strerror or exc}", "check the folder's owner and permissions")
    except AlreadyServing as exc:  # not a failure: the one that serves is there to use
        log.info("%s; exiting", exc)
        return 0
    except LockHolderSilent as exc:  # a failure the starter must hear, with the reason
        log.error("%s; exiting", exc)
        return 1
    app.transport_info = server.info
    app.start()
    _on_signals(app.shutdown_requested.set)
    await app.shutdown_requested.wait()
    await app.close()  # cancels the running job; every client hears its terminal notification
    await asyncio.sleep(0.05)
    await server.close()
    log.info("daemon stopped")
    return 0


def refuse(what: str, hint: str) -> int:
    """One line for a person (and the log), no traceback: the daemon will not serve like this."""
    log.error("refusing to start: %s", what)
    print(f"lofi-daemon: {what}\nhint: {hint}", file=sys.stderr, flush=True)
    return REFUSED_EXIT


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lofi-daemon", description="The lofi.nvim JSON-RPC daemon.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--stdio", action="store_true", help="serve one client on stdin/stdout (the default)")
    mode.add_argument("--socket", nargs="?", const="", metavar="PATH",
                      help="serve every client of this user on a unix socket (default path: --print-socket)")
    mode.add_argument("--print-socket", action="store_true", help="print the default socket path and exit")
    parser.add_argument("--idle-exit-sec", type=float, default=None,
                        help="socket mode: exit this long after the last client left "
                             f"(default $LOFI_IDLE_EXIT_SEC or {DEFAULT_IDLE_EXIT_SEC:g}; 0 = at once)")
    parser.add_argument("--client-outbox-bytes", type=int, default=None,
                        help="socket mode: unread output after which a client is disconnected")
    parser.add_argument("--max-line-bytes", type=int, default=None,
                        help="longest request line accepted; longer ones are discarded and answered PARSE_ERROR "
                             f"(default $LOFI_MAX_LINE_BYTES or {framing.DEFAULT_MAX_LINE_BYTES})")
    return parser


def max_line_bytes(arg: int | None) -> int:
    """The inbound line cap: the flag, else $LOFI_MAX_LINE_BYTES, else 1 MiB (at least 1 KiB)."""
    if arg is None:
        try:
            arg = int(os.environ.get("LOFI_MAX_LINE_BYTES", framing.DEFAULT_MAX_LINE_BYTES))
        except ValueError:
            log.warning("LOFI_MAX_LINE_BYTES is not a number; using %d", framing.DEFAULT_MAX_LINE_BYTES)
            arg = framing.DEFAULT_MAX_LINE_BYTES
    return max(1024, arg)


def idle_exit_sec(arg: float | None) -> float:
    if arg is not None:
        return max(0.0, arg)
    try:
        return max(0.0, float(os.environ.get("LOFI_IDLE_EXIT_SEC", DEFAULT_IDLE_EXIT_SEC)))
    except ValueError:
        return DEFAULT_IDLE_EXIT_SEC


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.print_socket:
        from .transport.paths import default_socket_path

        print(default_socket_path(Settings.load().cache_dir))
        return
    writer = protect_stdout()
    settings = Settings.load()
    try:
        settings.ensure_dirs()
    except OSError:
        pass
    logs.configure(settings.logs_dir)
    started = time.monotonic()
    if args.socket is None:
        log.info("lofi-daemon starting on stdio (pid %d, cache %s)", os.getpid(), settings.cache_dir)
        code = asyncio.run(serve(settings, sys.stdin.buffer, writer, max_line_bytes(args.max_line_bytes)))
    else:
        from .transport.paths import default_socket_path

        path = Path(args.socket) if args.socket else default_socket_path(settings.cache_dir)
        log.info("lofi-daemon starting on %s (pid %d, cache %s)", path, os.getpid(), settings.cache_dir)
        code = asyncio.run(serve_socket(settings, path, idle_exit_sec(args.idle_exit_sec), args.client_outbox_bytes,
                                        max_line_bytes(args.max_line_bytes)))
    log.debug("served for %.1f s", time.monotonic() - started)
    writer.close()
    # Daemon threads (stdin reader, downloads) must not keep the process alive.
    os._exit(code)


if __name__ == "__main__":
    main()
