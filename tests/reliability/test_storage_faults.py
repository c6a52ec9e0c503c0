"""Disk faults are STORAGE_ERROR with the path, the OS error and a hint that fits — never
"model inference failed, retry with another seed" — nothing half-written is left, and the
daemon keeps serving. Real file systems: a small tmpfs for a full disk, a read-only remount,
files where folders should be."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from daemon_client import Daemon

from lofi_daemon.errors import StorageError
from lofi_daemon.tracks import TrackLibrary


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def fill(fs: Path, leave_bytes: int) -> Path:
    """Fill the file system up to ``leave_bytes`` free."""
    import shutil

    filler = fs / "filler"
    free = shutil.disk_usage(fs).free
    filler.write_bytes(b"\0" * max(0, free - leave_bytes))
    return filler


def test_a_full_disk_is_a_storage_error_that_says_how_much_to_free_and_leaves_no_temp(tmpfs):
    fs = tmpfs("8m").path
    cache = fs  # the daemon's stderr goes next to it, off the small disk
    with Daemon.start(cache) as d:
        filler = fill(fs, 1_000_000)
        reply = d.call("generate", prompt="too big", duration_sec=20, seed=1)  # ~3.8 MB of wav
        done = d.wait_terminal(reply["result"]["track_id"])
        assert done["method"] == "generation_error" and done["code"] == "STORAGE_ERROR", done
        assert done["os_error"].startswith("ENOSPC") and done["path"].startswith(str(cache / "tracks"))
        assert "Free " in done["hint"] and f"MB on {fs}" in done["hint"]
        assert leftovers(cache / "tracks") == []  # no *.tmp keeping the disk full
        filler.unlink()
        reply = d.call("generate", prompt="fits now", duration_sec=20, seed=1)
        assert d.wait_terminal(reply["result"]["track_id"])["method"] == "generation_complete"


def test_a_read_only_cache_says_it_is_not_writable(tmpfs):
    mount = tmpfs("8m")
    cache = mount.path
    (cache / "tracks").mkdir(parents=True)
    mount.remount("ro")
    with Daemon.start(cache) as d:
        reply = d.call("generate", prompt="read only", duration_sec=5, seed=1)
        done = d.wait_terminal(reply["result"]["track_id"])
        assert done["code"] == "STORAGE_ERROR" and done["os_error"].startswith("EROFS"), done
        assert f"{cache / 'tracks'} is not writable" in done["hint"]
        assert d.call("ping")["result"]["status"] == "ok"


@pytest.mark.parametrize("blocked", ["cache", "tracks"])
def test_a_file_where_the_cache_or_tracks_folder_should_be_is_named(tmp_path, blocked):
    cache = tmp_path / "cache"
    if blocked == "cache":
        cache.write_text("oops")
        blocker = cache
    else:
        cache.mkdir()
        blocker = cache / "tracks"
        blocker.write_text("oops")
    with Daemon.start(cache) as d:
        reply = d.call("generate", prompt="no folder", duration_sec=5, seed=1)
        done = d.wait_terminal(reply["result"]["track_id"])
        assert done["code"] == "STORAGE_ERROR", done
        assert f"{blocker} is a file where a folder should be" in done["hint"]
        assert d.call("list_tracks")["result"] == {"tracks": []}
    assert blocker.read_text() == "oops"


def test_an_invalid_output_format_in_the_config_is_named_and_jobs_still_work(cache_dir):
    config = cache_dir / "config"
    config.mkdir(parents=True)
    (config / "config.json").write_text(json.dumps({"output_format": "mp3"}))
    with Daemon.start(cache_dir) as d:
        reply = d.call("generate", prompt="fmt", duration_sec=5, seed=1)
        done = d.wait_terminal(reply["result"]["track_id"])
        assert done["method"] == "generation_complete" and done["path"].endswith(".wav"), done
    assert "config: output_format 'mp3' is not one of wav, flac, ogg" in (cache_dir / "logs" / "daemon.log").read_text()


def test_a_temp_file_that_vanishes_mid_write_is_a_storage_error_that_says_so(tmp_path):
    """Another program (a cleaner, a sync tool) removes our temp file while we write it."""
    root = tmp_path / "tracks"
    lib = TrackLibrary(root)
    data = b"\0" * 64_000_000
    stop = threading.Event()

    def remove_temps() -> None:
        while not stop.is_set():
            for p in root.glob("*.wav.*.tmp"):
                p.unlink(missing_ok=True)

    thread = threading.Thread(target=remove_temps, daemon=True)
    thread.start()
    try:
        for attempt in range(20):
            try:
                lib.save(f"t{attempt:012x}", data, "wav", {})
            except StorageError as exc:
                error = exc
                break
        else:
            pytest.fail("the temp file never vanished in 20 tries")
    finally:
        stop.set()
        thread.join()
    assert "vanished" in error.message and error.facts["os_error"].startswith("ENOENT")
    assert not [p for p in root.iterdir() if p.name.startswith(f"t{attempt:012x}")]
