"""``read_track`` transfers between a real remote daemon and a local library: in bounded chunks,
verified, and nothing half-written when the remote dies or the job is cancelled mid-transfer."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from lofi_daemon.cancel import CancelToken
from lofi_daemon.errors import JobCancelled, RemoteUnavailable
from lofi_daemon.remote.connection import RemoteConnection
from lofi_daemon.remote.fetch import fetch_track
from lofi_daemon.tracks import TrackLibrary
from remote_helpers import files_in, generator_argv, kill_9

MB = 1 << 20
BIG_MB = 100
REMOTE_ID, LOCAL_ID = "t00000000b16a", "t0000000010ca"
LOCAL_KEY = "ab" * 32


def big_chunks() -> Iterator[bytes]:
    for i in range(BIG_MB):
        yield np.random.default_rng(i).bytes(MB)


@pytest.fixture(scope="module")
def big_remote(tmp_path_factory) -> tuple[Path, str]:
    """A remote cache with one 100 MB track, written in chunks (never whole in this process)."""
    remote = tmp_path_factory.mktemp("gpu-box")
    digest = hashlib.sha256()
    for chunk in big_chunks():
        digest.update(chunk)
    meta = {"prompt": "a very long night", "backend": "procedural", "model_version": "procedural-2", "seed": 1,
            "duration_sec": 546.0, "sample_rate": 48000, "channels": 2, "created_at": 1.0}
    TrackLibrary(remote / "tracks").save_stream(REMOTE_ID, big_chunks(), "wav", meta,
                                                expected_size=BIG_MB * MB, expected_sha256=digest.hexdigest())
    return remote, digest.hexdigest()


class Remote:
    """A RemoteConnection on an event loop of its own, called from the test thread."""

    def __init__(self, argv: list[str]) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.conn = RemoteConnection(argv, lambda method, params: None)

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(self.conn.request(method, params), self.loop).result(120)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.conn.close(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def peak_rss_bytes(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: the high-water mark restarts from now


def test_a_100_mb_track_transfers_whole_in_bounded_memory_on_both_sides(big_remote, tmp_path):
    remote_dir, sha256 = big_remote
    remote = Remote(generator_argv(remote_dir))
    try:
        remote.call("ping")
        remote_peak_before = peak_rss_bytes(remote.conn.pid)
        reset_peak_rss()
        local_peak_before = peak_rss_bytes()
        library = TrackLibrary(tmp_path / "tracks")
        seen: list[int] = []
        track = fetch_track(remote.call, REMOTE_ID, library, LOCAL_ID, cache_key=LOCAL_KEY,
                            origin={"generator": "test"}, cancel=CancelToken(), on_bytes=lambda n, t: seen.append(n))
        local_growth = peak_rss_bytes() - local_peak_before
        remote_growth = peak_rss_bytes(remote.conn.pid) - remote_peak_before
    finally:
        remote.close()
    digest = hashlib.sha256()
    with open(track.path, "rb") as f:
        while chunk := f.read(MB):
            digest.update(chunk)
    assert track.path.stat().st_size == BIG_MB * MB and digest.hexdigest() == sha256
    assert library.get(LOCAL_ID).meta["sha256"] == sha256 and library.get(LOCAL_ID).meta["remote"] == {"generator": "test"}
    assert len(seen) == BIG_MB and seen[-1] == BIG_MB * MB  # one bounded chunk per request
    # Holding the file (or its base64) whole would take more than 100 MB on either side.
    assert local_growth < 48 * MB, f"local peak grew by {local_growth / MB:.0f} MB"
    assert remote_growth < 48 * MB, f"remote peak grew by {remote_growth / MB:.0f} MB"


def test_the_remote_killed_mid_transfer_leaves_nothing_here(big_remote, tmp_path):
    remote_dir, _ = big_remote
    remote = Remote(generator_argv(remote_dir))
    library = TrackLibrary(tmp_path / "tracks")
    partial: list[str] = []

    def kill_after_10_mb(done: int, total: int) -> None:
        if done >= 10 * MB and not partial:
            partial.extend(files_in(tmp_path / "tracks"))  # the transfer is under way: a temp file
            kill_9(remote.conn.pid)

    try:
        remote.call("ping")
        with pytest.raises(RemoteUnavailable, match="went away"):
            fetch_track(remote.call, REMOTE_ID, library, LOCAL_ID, cache_key=LOCAL_KEY, origin={},
                        cancel=CancelToken(), on_bytes=kill_after_10_mb)
    finally:
        remote.close()
    assert len(partial) == 1 and partial[0].endswith(".tmp")
    assert files_in(tmp_path / "tracks") == [] and library.list() == []


def test_a_cancel_mid_transfer_leaves_nothing_here(big_remote, tmp_path):
    remote_dir, _ = big_remote
    remote = Remote(generator_argv(remote_dir))
    library = TrackLibrary(tmp_path / "tracks")
    cancel = CancelToken()
    try:
        with pytest.raises(JobCancelled):
            fetch_track(remote.call, REMOTE_ID, library, LOCAL_ID, cache_key=LOCAL_KEY, origin={}, cancel=cancel,
                        on_bytes=lambda done, total: done >= 5 * MB and cancel.cancel())
        assert remote.call("ping")["status"] == "ok"  # the connection is fine for the next job
    finally:
        remote.close()
    assert files_in(tmp_path / "tracks") == []


def test_read_track_answers_bounded_chunks_and_refuses_bad_requests(big_remote):
    remote_dir, sha256 = big_remote
    remote = Remote(generator_argv(remote_dir))
    try:
        first = remote.call("read_track", {"track_id": REMOTE_ID, "max_bytes": 1000})
        last = remote.call("read_track", {"track_id": REMOTE_ID, "offset": BIG_MB * MB - 10})
        with pytest.raises(Exception) as too_big:
            remote.call("read_track", {"track_id": REMOTE_ID, "max_bytes": 64 * MB})
        with pytest.raises(Exception) as missing:
            remote.call("read_track", {"track_id": "t123456789abc"})
    finally:
        remote.close()
    assert first["size"] == BIG_MB * MB and first["sha256"] == sha256 and first["format"] == "wav"
    assert len(first["data"]) == 1336 and first["eof"] is False and first["meta"]["prompt"] == "a very long night"
    assert last["eof"] is True and "meta" not in last and len(last["data"]) == 16  # 10 bytes of base64
    assert too_big.value.code.name == "INVALID_PARAMS" and "max_bytes" in too_big.value.message
    assert missing.value.code.name == "TRACK_NOT_FOUND"
