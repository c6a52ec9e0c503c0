"""``lofi``: the command line for people and scripts.

    lofi generate "lofi hip hop, jazzy piano" --duration 30 [--backend B --seed N --out F]
    lofi backends | lofi tracks | lofi setup BACKEND        [--in-process]
    lofi play ID|PATH|last [--sink S] | lofi radio "prompt" [--duration 30]   (until Ctrl-C)

When the user's shared daemon runs (an editor started it), every command goes to it over
its socket: the track shows up in every editor and uses the model already loaded. Otherwise
(or with --in-process) it runs the same App in this process (same validation, queue, cache
and files). A progress bar goes to stderr; stdout gets only the result (a path, or a table).
A new command is an ``async def _name(settings, args)`` in COMMANDS that calls
``open_endpoint`` and ``endpoint.call(method, **params)``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from . import logs
from .backends.registry import resolve_alias
from .errors import ErrorCode, LofiError
from .rpc import params as P
from .settings import Settings
from .transport.client import DaemonUnreachable
from .transport.endpoint import Endpoint, LocalService, OnNotification, open_endpoint
from .transport.paths import UnsafeSocketDir

TERMINAL = ("generation_complete", "generation_error", "generation_cancelled")


class ProgressBar:
    def __init__(self, stream: Any = sys.stderr, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self._last_line = ""

    def show(self, label: str, percent: float, detail: str = "") -> None:
        filled = int(self.width * percent / 100)
        line = f"{label} [{'#' * filled}{'.' * (self.width - filled)}] {percent:5.1f}% {detail}"
        if self.tty:
            self.stream.write("\r" + line.ljust(len(self._last_line)))
        elif int(percent) // 25 != int(_percent_of(self._last_line)) // 25 or not self._last_line:
            self.stream.write(line + "\n")  # a log file gets a line per quarter, not a flood
        self.stream.flush()
        self._last_line = line

    def done(self) -> None:
        if self.tty and self._last_line:
            self.stream.write("\n")
            self.stream.flush()


def _percent_of(line: str) -> float:
    try:
        return float(line.split("]")[1].split("%")[0])
    except (IndexError, ValueError):
        return -1.0


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    m, s = divmod(int(round(seconds)), 60)
    return f"~{m}:{s:02d}"


async def _open_endpoint(settings: Settings, args: argparse.Namespace) -> Endpoint:
    """The shared daemon, or the daemon's App built here when none serves (``--in-process``)."""

    def make_app(notify: OnNotification) -> LocalService:
        from .app import App  # the heavy part of the CLI, only when no daemon serves us

        return App(settings, notify)

    return await open_endpoint(settings, make_app, in_process=args.in_process)


async def _generate(settings: Settings, args: argparse.Namespace) -> int:
    raw: dict[str, Any] = {"prompt": args.prompt, "duration_sec": args.duration}
    for key in ("backend", "seed", "format"):
        if getattr(args, key) is not None:
            raw[key] = getattr(args, key)
    for item in args.param or []:
        key, _, value = item.partition("=")
        raw[key] = json.loads(value) if value[:1] in "-0123456789tfn[{\"" else value
    P.parse(P.GenerateParams, raw)  # a typo is reported here, before any daemon is involved
    endpoint = await _open_endpoint(settings, args)
    notes: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
    endpoint.on_notification = lambda method, payload: notes.put_nowait((method, payload))
    bar = ProgressBar()
    try:
        reply = await endpoint.call("generate", **raw)
        joined = " (joined the same request already running)" if reply.get("joined") else ""
        via = f" via {endpoint.description}" if endpoint.remote else ""
        print(f"{reply['status']}: track {reply['track_id']} ({reply['backend']}, seed {reply['seed']}){joined}{via}",
              file=sys.stderr)
        method, payload = await _follow(notes, reply["track_id"], bar)
    except KeyboardInterrupt:
        return 130
    finally:
        bar.done()
        await endpoint.close()
    if method != "generation_complete":
        print(f"lofi: {payload.get('code', 'CANCELLED')}: {payload.get('message', 'cancelled')}", file=sys.stderr)
        if payload.get("hint"):
            print(f"hint: {payload['hint']}", file=sys.stderr)
        return 1
    path = Path(payload["path"])
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, out)
        path = out
    print(f"{payload['duration_sec']:.2f} s at {payload['sample_rate']} Hz in {payload['generation_time_sec']:.1f} s",
          file=sys.stderr)
    if "understood" in payload:  # backends that read prompt words say which ones they used
        print(_words_line(payload), file=sys.stderr)
    print(path)
    return 0


def _words_line(payload: dict[str, Any]) -> str:
    """``understood: chill, rain · ignored: orchestral``"""
    line = "understood: " + (", ".join(payload.get("understood") or []) or "nothing")
    return line + (" · ignored: " + ", ".join(payload["ignored"]) if payload.get("ignored") else "")


async def _follow(notes: "asyncio.Queue[tuple[str, dict[str, Any]]]", track_id: str,
                  bar: ProgressBar) -> tuple[str, dict[str, Any]]:
    """Draw our track's progress until its terminal notification (a shared daemon sends others' too)."""
    while True:
        method, payload = await notes.get()
        if method == "backend_status" and payload.get("status") == "loading":
            print(f"loading {payload['backend']} ...", file=sys.stderr)
        if payload.get("track_id") != track_id:
            continue
        if method == "generation_progress":
            current, total = payload["current_step"], payload["total_steps"]
            steps = f"{current}/{total}" if total <= 100 else f"{100 * current // max(total, 1)}%"
            detail = f"{payload['phase']} {steps} {_eta(payload['eta_sec'])}"
            bar.show("generating", payload["percent"], detail)
        elif method in TERMINAL:
            return method, payload


async def _backends(settings: Settings, args: argparse.Namespace) -> int:
    endpoint = await _open_endpoint(settings, args)
    try:
        info = await endpoint.call("get_backends")
    finally:
        await endpoint.close()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for b in info["backends"]:
        star = "*" if b["name"] == info["default_backend"] else " "
        size = f"{b.get('size_bytes', 0) / 1e9:.1f} GB" if b.get("size_bytes") else "-"
        rng = f"{b.get('min_duration_sec', 0):g}-{b.get('max_duration_sec', 0):g} s" if "min_duration_sec" in b else ""
        print(f"{star} {b['name']:<11} {b['status']:<14} {rng:<10} {size}")
    return 0


async def _tracks(settings: Settings, args: argparse.Namespace) -> int:
    endpoint = await _open_endpoint(settings, args)
    try:
        tracks = (await endpoint.call("list_tracks", limit=args.limit))["tracks"]
    finally:
        await endpoint.close()
    if args.json:
        print(json.dumps(tracks, indent=2))
        return 0
    for t in tracks:
        print(f"{t['track_id']}  {t.get('backend', '?'):<10} {t.get('duration_sec', 0):6.1f} s  "
              f"seed {t.get('seed')}  {t.get('prompt', '')[:50]}  {t['path']}")
    return 0


async def _setup(settings: Settings, args: argparse.Namespace) -> int:
    endpoint = await _open_endpoint(settings, args)
    try:
        return await _follow_setup(endpoint, args.backend)
    finally:
        await endpoint.close()  # in-process: a download still running (Ctrl-C) is cancelled


async def _follow_setup(endpoint: Endpoint, backend: str) -> int:
    """The daemon downloads (the shared one: every editor sees the progress; else one in this
    process); we draw its progress."""
    name = resolve_alias(backend)  # the notifications name it so; others' downloads are not ours
    notes: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
    endpoint.on_notification = lambda method, payload: notes.put_nowait((method, payload))
    entry = next((b for b in (await endpoint.call("get_backends"))["backends"] if b.get("name") == name), {})
    if entry.get("licence") and entry.get("status") != "installed":  # said before any byte is fetched
        print(f"{name} licence: {entry['licence']}", file=sys.stderr)
    reply = await endpoint.call("download_backend", backend=backend)
    if reply.get("already_installed"):
        print(f"{backend} is ready: nothing to download.", file=sys.stderr)
        return 0
    bar = ProgressBar()
    try:
        while True:
            method, p = await notes.get()
            if p.get("backend") != name:
                continue
            if method == "download_progress":
                detail = (f"{p['component']} {p['component_percent']:.0f}% "
                          f"{p['bytes_downloaded'] / 1e6:.0f}/{p['bytes_total'] / 1e6:.0f} MB")
                bar.show("downloading", p["overall_percent"], detail)
            elif method == "download_complete":
                break
            elif method == "download_error":
                code = ErrorCode.__members__.get(p.get("code", ""), ErrorCode.DOWNLOAD_FAILED)
                raise LofiError(p.get("message", "download failed"), code=code, hint=p.get("hint"))
    finally:
        bar.done()
    print(f"{backend} is installed (downloaded by {endpoint.description})", file=sys.stderr)
    return 0


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}:{s:02d}"


def _now_playing(state: dict[str, Any]) -> str:
    text = f"♪ {'paused ' if state['state'] == 'paused' else ''}{state.get('prompt') or state.get('track_id')} " \
           f"{_clock(state['position_sec'])}/{_clock(state['duration_sec'])}"
    nxt = state.get("next")
    if nxt and nxt.get("percent", 100) < 100:
        text += f" · next {int(nxt['percent'])}%"
    return text


async def _listen(endpoint: Endpoint, notes: "asyncio.Queue[tuple[str, dict[str, Any]]]") -> int:
    """One now-playing line until Ctrl-C, a playback error (exit 3) or the end of the music."""
    tty = sys.stderr.isatty()
    shown, started = "", False
    while True:
        method, payload = await notes.get()
        if method == "playback_error":
            print(("\n" if shown and tty else "") + f"lofi: {payload.get('message')}", file=sys.stderr)
            if payload.get("hint"):
                print(f"hint: {payload['hint']}", file=sys.stderr)
            return 3
        if method != "playback_state":
            continue
        if payload["state"] == "stopped":
            if started:  # the music ended (a sink that failed to start says so in playback_error)
                print("\n" if shown and tty else "", end="", file=sys.stderr)
                return 0
            continue
        started = started or payload.get("sink") is not None
        line = _now_playing(payload)
        if tty:
            sys.stderr.write("\r" + line.ljust(len(shown)))
            sys.stderr.flush()
        elif line.split(" ")[1:2] != shown.split(" ")[1:2] or not shown:
            print(line, file=sys.stderr)  # not a terminal: a line per track, not a flood
        shown = line


async def _play_until_interrupted(settings: Settings, args: argparse.Namespace, method: str,
                                  params: dict[str, Any]) -> int:
    endpoint = await _open_endpoint(settings, args)
    notes: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
    endpoint.on_notification = lambda m, payload: notes.put_nowait((m, payload))
    try:
        if args.sink:
            params["sink"] = args.sink
        await endpoint.call(method, **params)
        return await _listen(endpoint, notes)
    finally:  # Ctrl-C: the music stops with the command
        try:
            await asyncio.wait_for(endpoint.call("stop"), 5)
        except (LofiError, OSError, asyncio.TimeoutError, asyncio.CancelledError):
            pass
        await endpoint.close()


async def _play(settings: Settings, args: argparse.Namespace) -> int:
    target = Path(args.target).expanduser()
    params: dict[str, Any] = {"path": str(target.resolve())} if target.is_file() else {"track_id": args.target}
    if args.no_loop:
        params["loop"] = False
    return await _play_until_interrupted(settings, args, "play", params)


async def _radio(settings: Settings, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"prompt": args.prompt, "duration_sec": args.duration}
    if args.backend:
        params["backend"] = args.backend
    return await _play_until_interrupted(settings, args, "radio_start", params)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lofi", description="Local AI music: generate instrumental tracks.")
    parser.add_argument("--log-level", default="WARNING", help="daemon log level on stderr (default WARNING)")
    parser.add_argument("--in-process", action="store_true",
                        help="do not use the running shared daemon; run everything in this process")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="generate a track and print its path")
    gen.add_argument("prompt")
    gen.add_argument("--duration", type=float, default=30.0, help="seconds (default 30)")
    gen.add_argument("--backend", help="procedural, musicgen or ace_step (default: the configured one)")
    gen.add_argument("--seed", type=int)
    gen.add_argument("--format", choices=["wav", "flac", "ogg"])
    gen.add_argument("--out", help="also copy the track to this path")
    gen.add_argument("--param", "-p", action="append", metavar="KEY=VALUE",
                     help="a backend parameter, e.g. -p inference_steps=60 (repeatable)")

    back = sub.add_parser("backends", help="list backends and their install state")
    back.add_argument("--json", action="store_true")

    tr = sub.add_parser("tracks", help="list generated tracks, newest first")
    tr.add_argument("--limit", type=int, default=20)
    tr.add_argument("--json", action="store_true")

    st = sub.add_parser("setup", help="download a backend's model weights")
    st.add_argument("backend")

    pl = sub.add_parser("play", help="play a track (id, 'last' or a file) until Ctrl-C")
    pl.add_argument("target", help="a track id, 'last', or the path of an audio file")
    pl.add_argument("--sink", help="audio output: auto, pw-cat, paplay, aplay, mpv, ffplay, sounddevice, ...")
    pl.add_argument("--no-loop", action="store_true", help="stop at the end instead of looping")

    ra = sub.add_parser("radio", help="endless music from a prompt until Ctrl-C")
    ra.add_argument("prompt")
    ra.add_argument("--duration", type=float, default=30.0, help="seconds per track (default 30)")
    ra.add_argument("--backend")
    ra.add_argument("--sink", help="audio output (see lofi play --help)")
    return parser


COMMANDS = {"generate": _generate, "backends": _backends, "tracks": _tracks, "setup": _setup,
            "play": _play, "radio": _radio}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings.load()
    logs.configure(None, args.log_level)
    try:
        return asyncio.run(COMMANDS[args.command](settings, args))
    except LofiError as exc:
        print(f"lofi: {exc.message}\nhint: {exc.hint}", file=sys.stderr)
        return 2
    except DaemonUnreachable as exc:  # another user's daemon: prompts are private, never talk to it
        print(f"lofi: {exc}\nhint: unset LOFI_SOCKET (or point it at your own daemon's socket), "
              "or run with --in-process", file=sys.stderr)
        return 2
    except UnsafeSocketDir as exc:
        print(f"lofi: unsafe socket directory: {exc.strerror or exc}\nhint: remove it, or point $XDG_RUNTIME_DIR / "
              "$LOFI_SOCKET at a directory only you own", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lofi: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
