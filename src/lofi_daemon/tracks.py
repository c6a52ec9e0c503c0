"""The track library on disk: ``tracks/<track_id>.<ext>`` plus ``<track_id>.json`` sidecars.

The disk is the truth: other processes (the CLI, a second daemon) write and delete tracks in
the same folder, so every lookup first re-reads the folder listing when its mtime moved
(a stat call otherwise) and parses only sidecars that changed.

A track is committed as one unit (``save``):

1. the audio and the sidecar are written to temp names that name their owner
   (``<final>.<pid>.<random>.tmp``), each flock-ed by the writer and fsync-ed;
2. the audio is renamed to its final name, then the sidecar: the sidecar appearing is the
   commit. The writer keeps its lock on the audio inode until the sidecar is in place.

At start-up, temp files whose lock is free and whose owner pid is gone (or that are older than
any write could take) are removed, and so is a final audio file with no sidecar whose lock is
free (a writer killed between the two renames): after a crash nothing half-written remains.

Every sidecar is untrusted input (caches get synced and shared): it is validated field by
field, its ``track_id`` must have the generated form and its ``file`` must be exactly
``<track_id>.<format>``, a regular file (not a symlink) in this folder. Anything else is
skipped with one log line, so no sidecar can point the library at a file outside it.

Before a track is played, ``verify`` checks its audio against the sidecar: a regular file
(opened without following links or blocking), no larger than any track can be, with the
sha256 the sidecar recorded. Hashing runs once per file version (device, inode, size, mtime);
a damaged track is TRACK_DAMAGED with the request that makes it again, and the cache stops
answering that request with it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import math
import os
import re
import shutil
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Iterable, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError, model_validator

from .errors import StorageError, TrackDamaged, TrackNotFound
from .files import DIR_MODE, OwnedTemp, fsync_dir, read_regular_file, temp_is_dead, unlink_if_unlocked

log = logging.getLogger(__name__)

FORMATS = ("wav", "flac", "ogg")  # the same keys as audio.FORMATS (kept import-light here)
TRACK_ID_RE = re.compile(r"t[0-9a-f]{12}")  # the form app.new_track_id makes
MAX_SIDECAR_BYTES = 1 << 20
MAX_AUDIO_BYTES = 512 << 20  # 240 s of 48 kHz stereo PCM_16 is 46 MB: anything near this is not ours
HASH_CHUNK = 1 << 20
MTIME_TICK_NS = 2_000_000_000  # a folder changed this recently may change again within one mtime tick


def cache_key(*, backend: str, model_version: str, prompt: str, seed: int, duration_sec: float,
              fmt: str, params: dict[str, Any]) -> str:
    canonical = json.dumps(
        {"backend": backend, "model_version": model_version, "prompt": prompt, "seed": seed,
         "duration_sec": float(duration_sec), "format": fmt, "params": params},
        sort_keys=True, separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# ----- the sidecar, validated -------------------------------------------------------------------

Hex64 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Scalar = Union[bool, int, float, str, None]
Number = Union[int, float]


class Sidecar(BaseModel):
    """What a sidecar may hold; unknown fields are kept only when they are small plain JSON."""

    model_config = ConfigDict(extra="allow", strict=True)

    track_id: Annotated[str, StringConstraints(pattern=r"^t[0-9a-f]{12}$")]
    file: str
    format: Optional[Literal["wav", "flac", "ogg"]] = None
    cache_key: Optional[Hex64] = None
    sha256: Optional[Hex64] = None
    prompt: str = ""
    backend: str = ""
    model_version: str = ""
    seed: Optional[int] = None
    duration_sec: Optional[Number] = None
    requested_duration_sec: Optional[Number] = None
    sample_rate: Optional[int] = None
    channels: Optional[int] = None
    generation_time_sec: Optional[Number] = None
    created_at: Number = 0.0
    params: dict[str, Scalar] = {}
    loopable: bool = False  # made to loop (edges not faded): playback wraps on the last sample

    @model_validator(mode="after")
    def _file_is_the_tracks_own(self) -> "Sidecar":
        stem, dot, ext = self.file.rpartition(".")
        if not dot or stem != self.track_id or ext not in FORMATS or (self.format and self.format != ext):
            raise ValueError(f"file {self.file!r} is not {self.track_id}.<{'|'.join(FORMATS)}>")
        for name in ("duration_sec", "requested_duration_sec", "generation_time_sec", "created_at"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} is not a finite number")
        return self

    def meta(self) -> dict[str, Any]:
        out = self.model_dump(exclude_none=True, exclude=set(self.model_extra or ()))
        for key, value in (self.model_extra or {}).items():
            if _plain_json(value, depth=2):
                out[key] = value
        return out


def _plain_json(value: Any, depth: int) -> bool:
    if isinstance(value, (bool, int, str)) or value is None:
        return not isinstance(value, str) or len(value) <= 4096
    if isinstance(value, float):
        return math.isfinite(value)
    if depth <= 0 or not isinstance(value, (list, dict)) or len(value) > 256:
        return False
    items = value.values() if isinstance(value, dict) else value
    return all(_plain_json(v, depth - 1) for v in items)


@dataclass(frozen=True)
class Track:
    track_id: str
    path: Path
    meta: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {**self.meta, "track_id": self.track_id, "path": str(self.path)}


# ----- the library ------------------------------------------------------------------------------

class TrackLibrary:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()  # the worker writes while the loop lists
        self._by_id: dict[str, Track] = {}
        self._by_key: dict[str, str] = {}
        self._dir_stamp: tuple[int, int] | None = None
        self._recheck = True
        self._parsed: dict[str, tuple[tuple[int, int, int], Track | None]] = {}
        self._warned: set[tuple[str, Any]] = set()
        self._verified: dict[str, tuple[int, int, int, int]] = {}  # track id -> file version hashed whole
        self._damaged: dict[str, tuple[int, int, int, int]] = {}  # track id -> file version found damaged
        self.clean_up()

    # ----- reading (every call sees what is on disk now) ------------------------------------
    def find_cached(self, key: str) -> Track | None:
        with self._lock:
            self._refresh()
            track_id = self._by_key.get(key)
            track = self._by_id.get(track_id) if track_id else None
            if track is not None and track_id in self._damaged and self._damaged[track_id] == _version(track.path):
                return None  # found damaged: the same request makes the track again
            return track

    # ----- verification -----------------------------------------------------------------------
    def verify(self, track: Track) -> None:
        """Raise TRACK_DAMAGED unless ``track``'s audio is the file its sidecar describes.
        Blocking (it may hash the whole file): the event loop runs it in a thread."""
        try:
            fd = os.open(track.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            what = "it is a symbolic link" if exc.errno == errno.ELOOP else f"it cannot be opened ({exc.strerror})"
            raise self._damage(track, None, what) from None
        try:
            st = os.fstat(fd)
            version = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            if not stat.S_ISREG(st.st_mode):
                raise self._damage(track, version, "it is not a regular file")
            if st.st_size == 0 or st.st_size > MAX_AUDIO_BYTES:
                raise self._damage(track, version, f"it holds {st.st_size} bytes, which no track can be")
            with self._lock:
                if self._verified.get(track.track_id) == version:
                    return
            expected = track.meta.get("sha256")
            if expected:
                digest = hashlib.sha256()
                while chunk := os.read(fd, HASH_CHUNK):
                    digest.update(chunk)
                if digest.hexdigest() != expected:
                    raise self._damage(track, version, f"its {st.st_size} bytes no longer match the sha256 "
                                                       "its sidecar recorded (truncated or changed)")
            with self._lock:
                self._verified[track.track_id] = version
                self._damaged.pop(track.track_id, None)
        finally:
            os.close(fd)

    def is_verified(self, track: Track) -> bool:
        """``verify`` would return at once: this very file version was hashed and matched."""
        with self._lock:
            known = self._verified.get(track.track_id)
        return known is not None and known == _version(track.path)

    def _damage(self, track: Track, version: tuple[int, int, int, int] | None, reason: str) -> TrackDamaged:
        if version is not None:
            with self._lock:
                self._damaged[track.track_id] = version
                self._verified.pop(track.track_id, None)
        self._warn_once(("damaged", track.track_id, version), "tracks: %s is damaged: %s", track.path, reason)
        again = regenerate_request(track.meta)
        hint = ("Generate it again: the same prompt, backend and seed"
                + (f" ({again['seed']})" if "seed" in again else "")
                + " make the same track (data.regenerate is the generate request), or delete it.")
        return TrackDamaged(f"track {track.track_id} is damaged: {reason}", hint=hint, track_id=track.track_id,
                            path=str(track.path), reason=reason, regenerate=again)

    def get(self, track_id: str) -> Track:
        with self._lock:
            self._refresh()
            track = self._by_id.get(track_id)
        if track is None:
            raise TrackNotFound(f"no track with id {track_id!r}", track_id=track_id)
        return track

    def list(self, *, backend: str | None = None, limit: int | None = None) -> list[Track]:
        with self._lock:
            self._refresh()
            tracks = list(self._by_id.values())
        if backend:
            tracks = [t for t in tracks if t.meta.get("backend") == backend]
        tracks.sort(key=lambda t: t.meta.get("created_at", 0), reverse=True)
        return tracks[:limit] if limit else tracks

    def _refresh(self) -> None:
        """Re-read the folder when it changed since the last look (a stat call when not)."""
        try:
            st = os.stat(self.root)
        except OSError:
            self._by_id, self._by_key, self._dir_stamp = {}, {}, None
            return
        stamp = (st.st_ino, st.st_mtime_ns)
        if stamp == self._dir_stamp and not self._recheck:
            return
        scanned_at = time.time_ns()
        try:
            with os.scandir(self.root) as it:
                entries = {e.name: e for e in it}
        except OSError as exc:
            self._warn_once(("scandir", str(exc)), "tracks: cannot list %s: %s", self.root, exc)
            return
        by_id: dict[str, Track] = {}
        parsed: dict[str, tuple[tuple[int, int, int], Track | None]] = {}
        for name, entry in entries.items():
            if not name.endswith(".json"):
                continue
            track = self._sidecar_entry(entry, parsed)
            if track is None:
                continue
            audio_entry = entries.get(track.path.name)
            if audio_entry is None or not audio_entry.is_file(follow_symlinks=False):
                continue  # audio deleted (or not a plain file): not a track any more
            by_id[track.track_id] = track
        self._parsed = parsed
        self._by_id = by_id
        self._by_key = {t.meta["cache_key"]: t.track_id for t in by_id.values() if t.meta.get("cache_key")}
        self._dir_stamp = stamp
        # Folder mtimes move in coarse ticks: a change in the same tick as our scan would not
        # show as a new mtime, so a recently changed folder is listed again next time. (abs: a
        # folder dated ahead by a sync tool or a wrong clock is not "recent" for ever.)
        self._recheck = abs(scanned_at - st.st_mtime_ns) < MTIME_TICK_NS

    def _sidecar_entry(self, entry: os.DirEntry, parsed: dict) -> Track | None:
        name = entry.name
        if not TRACK_ID_RE.fullmatch(name[:-5]):
            self._warn_once(("name", name), "tracks: skipping %s: not a track sidecar name", entry.path)
            return None
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            return None
        sig = (st.st_ino, st.st_size, st.st_mtime_ns)
        cached = self._parsed.get(name)
        if cached is not None and cached[0] == sig:
            parsed[name] = cached
            return cached[1]
        track = self._parse_sidecar(Path(entry.path), st)
        parsed[name] = (sig, track)
        return track

    def _parse_sidecar(self, path: Path, st: os.stat_result) -> Track | None:
        def skip(why: str) -> None:
            self._warn_once(("sidecar", path.name, st.st_mtime_ns), "tracks: skipping sidecar %s: %s", path, why)

        if not stat.S_ISREG(st.st_mode):
            skip("not a regular file (a symlink or a device)")
            return None
        if st.st_size > MAX_SIDECAR_BYTES:
            skip(f"{st.st_size} bytes, more than a sidecar can be")
            return None
        try:
            raw = json.loads(read_regular_file(path, MAX_SIDECAR_BYTES))
            sidecar = Sidecar.model_validate(raw)
        except (OSError, ValueError, RecursionError) as exc:  # ValidationError is a ValueError
            skip(_short(exc))
            return None
        if path.name != f"{sidecar.track_id}.json":
            skip(f"track_id {sidecar.track_id!r} does not match the file name")
            return None
        meta = sidecar.meta()
        meta.setdefault("format", sidecar.file.rsplit(".", 1)[1])
        return Track(sidecar.track_id, self.root / sidecar.file, meta)

    def _warn_once(self, key: tuple[str, Any], msg: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(msg, *args)

    # ----- writing --------------------------------------------------------------------------
    def save(self, track_id: str, data: bytes, fmt: str, meta: dict[str, Any], *,
             before_commit: Callable[[], None] | None = None) -> Track:
        """Commit audio and sidecar as one unit (see the module doc); the sidecar marks it done.

        ``before_commit`` runs just before the first rename (a cancel check: raising there
        leaves nothing behind). OS failures become STORAGE_ERROR naming the path and a fix.
        """
        return self._commit(track_id, [data], fmt, meta, before_commit=before_commit, needed_bytes=len(data))

    def save_stream(self, track_id: str, chunks: Iterable[bytes], fmt: str, meta: dict[str, Any], *,
                    expected_size: int, expected_sha256: str,
                    before_commit: Callable[[], None] | None = None) -> Track:
        """Commit audio that arrives in chunks (a track fetched from a remote generator) through
        the same commit as ``save``, holding one chunk in memory at a time. The audio must be
        exactly ``expected_size`` bytes hashing to ``expected_sha256``, else ``TrackVerificationFailed``
        and nothing is kept; an exception from ``chunks`` (a lost connection, a cancel) likewise."""
        def verify(size: int, sha256: str) -> None:
            if size != expected_size or sha256 != expected_sha256:
                raise TrackVerificationFailed(size, sha256, expected_size, expected_sha256)

        return self._commit(track_id, chunks, fmt, meta, before_commit=before_commit,
                            needed_bytes=expected_size, verify=verify)

    def _commit(self, track_id: str, chunks: Iterable[bytes], fmt: str, meta: dict[str, Any], *,
                before_commit: Callable[[], None] | None, needed_bytes: int,
                verify: Callable[[int, str], None] | None = None) -> Track:
        if not TRACK_ID_RE.fullmatch(track_id) or fmt not in FORMATS:
            raise ValueError(f"not a track id and format: {track_id!r}, {fmt!r}")
        audio_path = self.root / f"{track_id}.{fmt}"
        sidecar_path = self.root / f"{track_id}.json"
        self._ensure_root()
        audio_tmp = sidecar_tmp = None
        audio_placed = committed = False
        current = self.root
        try:
            current = audio_path
            audio_tmp = OwnedTemp.create(audio_path)
            digest, size = hashlib.sha256(), 0
            for chunk in chunks:
                view = memoryview(chunk)
                digest.update(view)
                size += len(view)
                while view:
                    view = view[os.write(audio_tmp.fd, view[:1 << 22]):]
            os.fsync(audio_tmp.fd)
            sha256 = digest.hexdigest()
            if verify is not None:
                verify(size, sha256)
            meta = {**meta, "track_id": track_id, "file": audio_path.name, "format": fmt, "sha256": sha256}
            sidecar_bytes = (json.dumps(meta, indent=2) + "\n").encode("ascii")  # ASCII: a lone surrogate cannot break it
            needed_bytes += len(sidecar_bytes)
            current = sidecar_path
            sidecar_tmp = OwnedTemp.create(sidecar_path)
            sidecar_tmp.write(sidecar_bytes)
            if before_commit is not None:
                before_commit()
            current = audio_tmp.path
            os.replace(audio_tmp.path, audio_path)
            audio_placed = True
            current = sidecar_tmp.path
            os.replace(sidecar_tmp.path, sidecar_path)
            committed = True
            fsync_dir(self.root)
        except OSError as exc:
            raise storage_error(exc, current, needed_bytes=needed_bytes) from exc
        finally:
            for tmp in (sidecar_tmp, audio_tmp):
                if tmp is not None:
                    if not committed:
                        tmp.path.unlink(missing_ok=True)
                    tmp.close()  # releases the lock: only now may a cleaner judge the audio
            if audio_placed and not committed:
                audio_path.unlink(missing_ok=True)
        track = Track(track_id, audio_path, meta)
        with self._lock:
            self._recheck = True
        return track

    def read_chunk(self, track_id: str, offset: int, length: int) -> tuple[Track, bytes, int]:
        """``length`` bytes of a track's audio from ``offset`` (fewer at the end), and its size.

        The file is opened without following a symlink and must be a regular file, so a
        chunk read never blocks on a FIFO nor leaves the library."""
        track = self.get(track_id)
        try:
            fd = os.open(track.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise TrackNotFound(f"track {track_id} was deleted", track_id=track_id) from None
        except OSError as exc:
            raise storage_error(exc, track.path) from exc
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise TrackNotFound(f"track {track_id} is not a regular file", track_id=track_id)
            return track, os.pread(fd, max(0, length), offset), st.st_size
        except OSError as exc:
            raise storage_error(exc, track.path) from exc
        finally:
            os.close(fd)

    def delete(self, track_id: str) -> Track:
        track = self.get(track_id)
        sidecar = self.root / f"{track_id}.json"
        try:  # the sidecar first: a crash in between leaves an orphan audio the next start removes
            sidecar.unlink(missing_ok=True)
            track.path.unlink(missing_ok=True)
        except OSError as exc:
            raise storage_error(exc, sidecar) from exc
        with self._lock:
            self._recheck = True
        return track

    def _ensure_root(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        except OSError as exc:
            raise storage_error(exc, self.root) from exc
        if not self.root.is_dir():
            raise storage_error(OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR)), self.root)

    # ----- start-up cleanup -------------------------------------------------------------------
    def clean_up(self) -> list[Path]:
        """Remove what dead writers left: their temp files and audio they never committed."""
        removed: list[Path] = []
        try:
            with os.scandir(self.root) as it:
                entries = {e.name: e for e in it}
        except OSError:
            return removed
        for name, entry in entries.items():
            path = Path(entry.path)
            if name.endswith(".tmp"):
                if temp_is_dead(path) and unlink_if_unlocked(path):
                    removed.append(path)
                continue
            stem, dot, ext = name.rpartition(".")
            if (dot and ext in FORMATS and TRACK_ID_RE.fullmatch(stem) and f"{stem}.json" not in entries
                    and entry.is_file(follow_symlinks=False)
                    and unlink_if_unlocked(path, unless_exists=self.root / f"{stem}.json")):
                removed.append(path)
        for path in removed:
            log.info("tracks: removed %s, left by a writer that stopped before committing", path)
        return removed


def _version(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def regenerate_request(meta: dict[str, Any]) -> dict[str, Any]:
    """The ``generate`` params that make this track again (what its sidecar recorded)."""
    request: dict[str, Any] = {}
    if isinstance(meta.get("prompt"), str) and meta["prompt"]:
        request["prompt"] = meta["prompt"]
    duration = meta.get("requested_duration_sec") or meta.get("duration_sec")
    if isinstance(duration, (int, float)):
        request["duration_sec"] = duration
    for key in ("backend", "seed", "format"):
        if meta.get(key) not in (None, ""):
            request[key] = meta[key]
    params = meta.get("params")
    if isinstance(params, dict):
        request.update({k: v for k, v in params.items() if k not in request})
    return request


# ----- errors -----------------------------------------------------------------------------------

class TrackVerificationFailed(Exception):
    """Fetched audio that is not what its sender's sidecar says (size or sha256)."""

    def __init__(self, size: int, sha256: str, expected_size: int, expected_sha256: str) -> None:
        super().__init__(f"got {size} bytes with sha256 {sha256[:12]}…, expected {expected_size} bytes "
                         f"with sha256 {expected_sha256[:12]}…")
        self.size, self.sha256 = size, sha256
        self.expected_size, self.expected_sha256 = expected_size, expected_sha256


def storage_error(exc: OSError, path: Path, *, needed_bytes: int = 0) -> StorageError:
    """A STORAGE_ERROR naming the path, the OS error and what the user can do about it."""
    code = errno.errorcode.get(exc.errno or 0, "OSError")
    os_error = f"{code}: {exc.strerror or exc}"
    folder = path if path.is_dir() else path.parent
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        free = _free_bytes(folder)
        short_mb = max(1, math.ceil((needed_bytes - free) / 1e6) + 1) if needed_bytes else 1
        hint = (f"Free {short_mb} MB on {_mount_point(folder)} (or set LOFI_CACHE_DIR to a bigger disk), "
                "then generate again.")
        message = f"the disk holding {folder} is full"
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        hint = f"{folder} is not writable: fix its permissions or set LOFI_CACHE_DIR to a writable folder."
        message = f"cannot write in {folder}"
    elif exc.errno in (errno.ENOTDIR, errno.EEXIST):
        blocker = _first_non_dir(path)
        hint = f"{blocker} is a file where a folder should be: move it away or set LOFI_CACHE_DIR."
        message = f"cannot create the folder {path}"
    elif exc.errno == errno.ENOENT and path.name.endswith(".tmp"):
        hint = "Another program removed the file while it was being written; generate again."
        message = f"the temporary file {path} vanished while the track was being written"
    else:
        hint = f"Check the cache dir {folder} (space, permissions), then try again."
        message = f"cannot write {path}"
    return StorageError(f"{message} ({os_error})", hint=hint, path=str(path), os_error=os_error)


def _free_bytes(path: Path) -> int:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return 0


def _mount_point(path: Path) -> Path:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    probe = probe.resolve()
    while not os.path.ismount(probe) and probe != probe.parent:
        probe = probe.parent
    return probe


def _first_non_dir(path: Path) -> Path:
    for candidate in [*reversed(path.parents), path]:
        if candidate.exists() and not candidate.is_dir():
            return candidate
    return path


def _short(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors()[:3])
    return f"{type(exc).__name__}: {exc}"[:300]
