"""Our resumable writer: one file from a URL into ``<file>.incomplete``, then into place.

Why not huggingface_hub's own download: its partial file name is unique per process and
it only checks sizes, so a killed daemon restarts a 6 GB file from zero and leaves the
orphan behind. Here the partial file has a stable name next to its final path, so any
later process continues it:

1. bytes already in ``<file>.incomplete`` are kept; the request asks ``Range: bytes=N-``;
2. ``206`` whose ``Content-Range`` starts at N appends; a ``200`` (server ignored Range)
   or a range that starts elsewhere restarts the file from byte 0;
3. the checksum is computed while streaming (the kept prefix is re-read once);
4. on a match the file is fsynced and renamed into place atomically; on a mismatch the
   partial file is deleted, since its bytes cannot be trusted.

One call is one attempt; the caller retries ``TransientError`` with backoff, and every
retry resumes from what is on disk.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Callable

from ..cancel import CancelToken
from ..errors import DownloadFailed
from ..files import fsync_dir
from .hub import Hub, TransientError, http_failure
from .verify import ContentHash, Expected

log = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class ChecksumMismatch(TransientError):
    """The finished bytes do not match the hub's checksum (retried once from scratch)."""


class ByteCounter:
    """Bytes of one file that progress has counted, so a restart can take them back."""

    def __init__(self, sink: Callable[[int], None], already: int = 0) -> None:
        self.sink = sink
        self.counted = already

    def add(self, nbytes: int) -> None:
        self.counted += nbytes
        self.sink(nbytes)

    def reset(self) -> None:
        if self.counted:
            self.add(-self.counted)


def partial_path(final: Path) -> Path:
    return final.with_name(final.name + ".incomplete")


def fetch_file(
    hub: Hub,
    url: str,
    final: Path,
    expected: Expected,
    hasher: ContentHash,
    counter: ByteCounter,
    cancel: CancelToken,
    *,
    what: str,
    repo_id: str,
    read_timeout: float = 60.0,
    chunk_size: int = CHUNK_SIZE,
) -> None:
    """One attempt at making ``final`` hold the expected bytes. ``hasher`` carries the
    digest of the partial file between attempts of the same process."""
    partial = partial_path(final)
    partial.parent.mkdir(parents=True, exist_ok=True)
    offset = partial.stat().st_size if partial.exists() else 0
    if offset > expected.size or offset < hasher.count:
        _restart(partial, hasher, counter)
        offset = 0

    if offset < expected.size:
        offset = _stream(
            hub, url, partial, offset, expected, hasher, counter, cancel, what, repo_id, read_timeout, chunk_size
        )
    if offset < expected.size:
        raise TransientError(f"{what}: the connection ended after {offset} of {expected.size} bytes")

    hasher.catch_up(partial)  # no-op unless this process started from an existing partial
    problem = hasher.mismatch()
    if problem is not None:
        _restart(partial, hasher, counter)
        raise ChecksumMismatch(f"{what}: downloaded bytes do not match the hub ({problem})")
    with open(partial, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(partial, final)
    fsync_dir(final.parent)


def _stream(
    hub: Hub,
    url: str,
    partial: Path,
    offset: int,
    expected: Expected,
    hasher: ContentHash,
    counter: ByteCounter,
    cancel: CancelToken,
    what: str,
    repo_id: str,
    read_timeout: float,
    chunk_size: int,
) -> int:
    headers = hub.headers_for(url)
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        with hub.stream(url, headers, read_timeout) as response:
            status = response.status_code
            if status == 416 and offset:
                # The server rejects our offset: the partial file is not a prefix it knows.
                _restart(partial, hasher, counter)
                raise TransientError(f"{what}: server refused to resume at byte {offset}")
            if status >= 500 or status in (408, 429):
                raise TransientError(f"{what}: server answered HTTP {status}")
            if status >= 400:
                raise http_failure(status, what, repo_id)
            if offset and not _continues_at(response, offset):
                log.info("%s: server did not continue at byte %d (HTTP %d); restarting the file", what, offset, status)
                _restart(partial, hasher, counter)
                offset = 0
            if offset:
                hasher.catch_up(partial)  # hash the kept prefix once, before appending
            with open(partial, "ab" if offset else "wb") as out:
                for chunk in response.iter_bytes(chunk_size):
                    if not chunk:
                        continue
                    room = expected.size - offset
                    if len(chunk) > room:
                        raise DownloadFailed(
                            f"{what}: the server sent more than the expected {expected.size} bytes",
                            hint="The hub's metadata and file disagree; try again later.",
                        )
                    out.write(chunk)
                    hasher.update(chunk)
                    offset += len(chunk)
                    counter.add(len(chunk))
                    cancel.check()
    except OSError as exc:
        if isinstance(exc, Hub.transport_errors()):
            raise TransientError(f"{what}: network error: {exc}") from exc
        raise DownloadFailed(
            f"{what}: cannot write {partial.name}: {exc.strerror or exc}",
            hint="Free some disk space (or fix the cache folder's permissions) and run setup again; "
            "the download continues where it stopped.",
            path=str(partial),
        ) from exc
    except Hub.transport_errors() as exc:
        raise TransientError(f"{what}: network error: {exc}") from exc
    return offset


def _continues_at(response: object, offset: int) -> bool:
    if getattr(response, "status_code", 0) != 206:
        return False
    match = _CONTENT_RANGE.match(getattr(response, "headers", {}).get("Content-Range", ""))
    return bool(match) and int(match.group(1)) == offset


def _restart(partial: Path, hasher: ContentHash, counter: ByteCounter) -> None:
    """Throw away the partial file (and the bytes progress had counted for it)."""
    partial.unlink(missing_ok=True)
    hasher.reset()
    counter.reset()
