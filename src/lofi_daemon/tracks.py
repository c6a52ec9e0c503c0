"""The track library on disk: ``tracks/<track_id>.<ext>`` plus ``<track_id>.json`` sidecars.

Writes are atomic (``*.tmp`` then ``os.replace``) and the sidecar holds everything needed to
regenerate the track. An identical request (same backend, model version, prompt, seed,
duration, format and parameters) maps to the same cache key, so it is served from disk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import TrackNotFound

log = logging.getLogger(__name__)


def cache_key(*, backend: str, model_version: str, prompt: str, seed: int, duration_sec: float,
              fmt: str, params: dict[str, Any]) -> str:
    canonical = json.dumps(
        {"backend": backend, "model_version": model_version, "prompt": prompt, "seed": seed,
         "duration_sec": float(duration_sec), "format": fmt, "params": params},
        sort_keys=True, separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Track:
    track_id: str
    path: Path
    meta: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {**self.meta, "track_id": self.track_id, "path": str(self.path)}


class TrackLibrary:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()  # the worker writes while the loop lists
        self._by_id: dict[str, Track] = {}
        self._by_key: dict[str, str] = {}
        self._scan()

    def _scan(self) -> None:
        if not self.root.is_dir():
            return
        for sidecar in self.root.glob("*.json"):
            try:
                meta = json.loads(sidecar.read_text(encoding="utf-8"))
                track_id = meta["track_id"]
                audio = self.root / meta["file"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("tracks: ignoring unreadable sidecar %s (%s)", sidecar, exc)
                continue
            if audio.is_file():
                self._remember(Track(track_id, audio, meta))
        for tmp in self.root.glob("*.tmp"):  # left by a crash mid-write
            tmp.unlink(missing_ok=True)

    def _remember(self, track: Track) -> None:
        self._by_id[track.track_id] = track
        if key := track.meta.get("cache_key"):
            self._by_key[key] = track.track_id

    def find_cached(self, key: str) -> Track | None:
        with self._lock:
            track_id = self._by_key.get(key)
            track = self._by_id.get(track_id) if track_id else None
        if track and not track.path.is_file():  # deleted behind our back
            with self._lock:
                self._forget(track.track_id)
            return None
        return track

    def save(self, track_id: str, data: bytes, fmt: str, meta: dict[str, Any]) -> Track:
        """Write audio then sidecar atomically; the sidecar appearing marks the track done."""
        self.root.mkdir(parents=True, exist_ok=True)
        audio_path = self.root / f"{track_id}.{fmt}"
        meta = {**meta, "track_id": track_id, "file": audio_path.name}
        _write_atomic(audio_path, data)
        _write_atomic(self.root / f"{track_id}.json", (json.dumps(meta, indent=2) + "\n").encode("utf-8"))
        track = Track(track_id, audio_path, meta)
        with self._lock:
            self._remember(track)
        return track

    def get(self, track_id: str) -> Track:
        with self._lock:
            track = self._by_id.get(track_id)
        if track is None:
            raise TrackNotFound(f"no track with id {track_id!r}", track_id=track_id)
        return track

    def list(self, *, backend: str | None = None, limit: int | None = None) -> list[Track]:
        with self._lock:
            tracks = list(self._by_id.values())
        if backend:
            tracks = [t for t in tracks if t.meta.get("backend") == backend]
        tracks.sort(key=lambda t: t.meta.get("created_at", 0), reverse=True)
        return tracks[:limit] if limit else tracks

    def delete(self, track_id: str) -> Track:
        track = self.get(track_id)
        with self._lock:
            self._forget(track_id)
        track.path.unlink(missing_ok=True)
        (self.root / f"{track_id}.json").unlink(missing_ok=True)
        return track

    def _forget(self, track_id: str) -> None:
        track = self._by_id.pop(track_id, None)
        if track and (key := track.meta.get("cache_key")):
            self._by_key.pop(key, None)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
