"""A finished remote track brought home: ``read_track`` in bounded chunks, verified, committed.

Runs in the job's worker thread. ``call`` sends one request to the remote and waits for its
answer. One chunk at a time is in memory (base64 in the reply, bytes on the way to disk); the
library's ``save_stream`` hashes while it writes, and only a file of the announced size and
sha256 is committed — through the library's normal commit, so a lost connection, a cancel or a
bad chunk leaves nothing behind. Every field of every reply is checked: the remote is untrusted.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Callable, Iterator

from pydantic import ValidationError

from ..cancel import CancelToken
from ..errors import RemoteUnavailable
from ..tracks import FORMATS, Sidecar, Track, TrackLibrary, TrackVerificationFailed

CHUNK_BYTES = 1 << 20
MAX_TRACK_BYTES = 8 << 30
HEX64 = re.compile(r"[0-9a-f]{64}")
# What the local library sets itself: never taken from the remote's sidecar.
LOCAL_FIELDS = ("track_id", "file", "format", "sha256", "cache_key", "path")

Call = Callable[[str, dict[str, Any]], Any]


def fetch_track(call: Call, remote_id: str, library: TrackLibrary, local_id: str, *, cache_key: str,
                origin: dict[str, Any], cancel: CancelToken,
                on_bytes: Callable[[int, int], None] = lambda done, total: None,
                chunk_bytes: int = CHUNK_BYTES) -> Track:
    """Copy remote track ``remote_id`` into ``library`` as ``local_id``; returns the local track."""
    first = call("read_track", {"track_id": remote_id, "offset": 0, "max_bytes": chunk_bytes})
    size, sha256, fmt, remote_meta = _header(first)
    meta = {k: v for k, v in remote_meta.items() if k not in LOCAL_FIELDS}
    meta.update(cache_key=cache_key, remote=origin)
    try:  # what the library will accept when it reads the sidecar back
        Sidecar.model_validate({**meta, "track_id": local_id, "file": f"{local_id}.{fmt}", "format": fmt})
    except ValidationError as exc:
        raise _bad(f"the remote's sidecar for {remote_id} is not valid here ({exc.errors()[0]['msg']})") from None

    def chunks() -> Iterator[bytes]:
        reply, offset = first, 0
        while True:
            data = _chunk(reply, offset, chunk_bytes)
            if not data and offset < size:
                raise _bad(f"the remote sent no data at offset {offset} of {size}")
            offset += len(data)
            yield data
            on_bytes(min(offset, size), size)
            if offset >= size:
                return
            cancel.check()
            reply = call("read_track", {"track_id": remote_id, "offset": offset, "max_bytes": chunk_bytes})

    try:
        return library.save_stream(local_id, chunks(), fmt, meta, expected_size=size, expected_sha256=sha256,
                                   before_commit=cancel.commit)
    except TrackVerificationFailed as exc:
        raise RemoteUnavailable(
            f"the track from the remote failed verification and was discarded: {exc}",
            hint="Generate it again; if this repeats, check the remote's disk (its track file no longer "
                 "matches its sidecar).",
            remote_track_id=remote_id, expected_sha256=exc.expected_sha256, got_sha256=exc.sha256,
            expected_bytes=exc.expected_size, got_bytes=exc.size) from None


def _header(reply: Any) -> tuple[int, str, str, dict[str, Any]]:
    if not isinstance(reply, dict):
        raise _bad("read_track answered something that is not an object")
    size, sha256, fmt, meta = reply.get("size"), reply.get("sha256"), reply.get("format"), reply.get("meta")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_TRACK_BYTES:
        raise _bad(f"read_track gave an impossible size {size!r}")
    if not isinstance(sha256, str) or not HEX64.fullmatch(sha256):
        raise _bad("read_track gave no sha256")
    if fmt not in FORMATS:
        raise _bad(f"read_track gave an unknown format {fmt!r}")
    if not isinstance(meta, dict):
        raise _bad("read_track gave no sidecar")
    return size, sha256, fmt, meta


def _chunk(reply: Any, offset: int, chunk_bytes: int) -> bytes:
    if not isinstance(reply, dict) or reply.get("offset") != offset or not isinstance(reply.get("data"), str):
        raise _bad(f"read_track answered out of order at offset {offset}")
    encoded = reply["data"]
    if len(encoded) > 4 * (chunk_bytes // 3 + 1):
        raise _bad(f"read_track sent more than the {chunk_bytes} bytes asked for")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise _bad(f"read_track sent data that is not base64 at offset {offset}") from None


def _bad(message: str) -> RemoteUnavailable:
    return RemoteUnavailable(f"{message}; nothing was kept",
                             hint="The remote daemon may be of another version; update it, then generate again.")
