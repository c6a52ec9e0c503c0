"""``lofi``: the command line for people and scripts.

    lofi generate "lofi hip hop, jazzy piano" --duration 30 [--backend B --seed N --out F]
    lofi backends | lofi tracks | lofi setup BACKEND

It runs the same App in-process as the daemon (same validation, queue, cache and files),
and draws a progress bar on stderr. stdout gets only the result (a path, or a table).
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
from .app import App
from .errors import LofiError
from .rpc import params as P
from .settings import Settings

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


async def _generate(settings: Settings, args: argparse.Namespace) -> int:
    finished: asyncio.Future[tuple[str, dict[str, Any]]] = asyncio.get_running_loop().create_future()
    bar = ProgressBar()

    def notify(method: str, payload: dict[str, Any]) -> None:
        if method == "generation_progress":
            current, total = payload["current_step"], payload["total_steps"]
            steps = f"{current}/{total}" if total <= 100 else f"{100 * current // max(total, 1)}%"
            detail = f"{payload['phase']} {steps} {_eta(payload['eta_sec'])}"
            bar.show("generating", payload["percent"], detail)
        elif method == "backend_status" and payload["status"] == "loading":
            print(f"loading {payload['backend']} ...", file=sys.stderr)
        elif method in TERMINAL and not finished.done():
            finished.set_result((method, payload))

    app = App(settings, notify)
    app.start()
    raw: dict[str, Any] = {"prompt": args.prompt, "duration_sec": args.duration}
    for key in ("backend", "seed", "format"):
        if getattr(args, key) is not None:
            raw[key] = getattr(args, key)
    for item in args.param or []:
        key, _, value = item.partition("=")
        raw[key] = json.loads(value) if value[:1] in "-0123456789tfn[{\"" else value
    try:
        reply = await app.generate(P.parse(P.GenerateParams, raw))
        print(f"{reply['status']}: track {reply['track_id']} ({reply['backend']}, seed {reply['seed']})",
              file=sys.stderr)
        method, payload = await finished
    except KeyboardInterrupt:
        return 130
    finally:
        bar.done()
        await app.close()
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
    print(path)
    return 0


async def _backends(settings: Settings, args: argparse.Namespace) -> int:
    app = App(settings, lambda *_: None)
    info = await app.get_backends(P.NoParams())
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
    app = App(settings, lambda *_: None)
    tracks = (await app.list_tracks(P.ListTracksParams(limit=args.limit)))["tracks"]
    if args.json:
        print(json.dumps(tracks, indent=2))
        return 0
    for t in tracks:
        print(f"{t['track_id']}  {t.get('backend', '?'):<10} {t.get('duration_sec', 0):6.1f} s  "
              f"seed {t.get('seed')}  {t.get('prompt', '')[:50]}  {t['path']}")
    return 0


async def _setup(settings: Settings, args: argparse.Namespace) -> int:
    from .backends.base import CancelToken
    from .models.store import ModelStore

    app = App(settings, lambda *_: None)
    name = app.registry.canonical(args.backend)
    backend = app.registry.get(name)
    manifest = getattr(backend, "manifest", None)
    if manifest is None or backend.is_installed():
        print(f"{name} is ready: nothing to download.", file=sys.stderr)
        return 0
    store: ModelStore = app.store
    bar = ProgressBar()

    def on_progress(p: Any) -> None:
        detail = f"{p.component} {p.component_percent:.0f}% {p.bytes_downloaded / 1e6:.0f}/{p.bytes_total / 1e6:.0f} MB"
        bar.show("downloading", p.overall_percent, detail)

    cancel = CancelToken()
    try:
        await asyncio.get_running_loop().run_in_executor(None, app.install, name, manifest, on_progress, cancel)
    except (KeyboardInterrupt, asyncio.CancelledError):
        cancel.cancel()
        raise
    finally:
        bar.done()
    print(f"{name} is installed in {store.snapshot_dir(manifest)}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lofi", description="Local AI music: generate instrumental tracks.")
    parser.add_argument("--log-level", default="WARNING", help="daemon log level on stderr (default WARNING)")
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
    return parser


COMMANDS = {"generate": _generate, "backends": _backends, "tracks": _tracks, "setup": _setup}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings.load()
    logs.configure(None, args.log_level)
    try:
        return asyncio.run(COMMANDS[args.command](settings, args))
    except LofiError as exc:
        print(f"lofi: {exc.message}\nhint: {exc.hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lofi: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
