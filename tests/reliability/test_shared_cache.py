"""Several processes on one cache: a starting library never deletes another writer's
in-flight temp file, config saves never collide, and every process sees the disk as it is
(tracks written or deleted by another process show up, or disappear, at the next call)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from daemon_client import Daemon

from lofi_daemon.tracks import TrackLibrary

T1, T2 = "t" + "1" * 12, "t" + "2" * 12

HOLD_TEMP = r"""
import sys, time
from pathlib import Path
from lofi_daemon.files import OwnedTemp
tmp = OwnedTemp.create(Path(sys.argv[1]))
tmp.write(b"half a track")
print(tmp.path, flush=True)
sys.stdin.read()  # keep writing until told to stop
"""


def test_a_starting_library_keeps_the_temp_file_of_a_live_writer_and_removes_a_dead_ones(tmp_path):
    root = tmp_path / "tracks"
    root.mkdir()
    writer = subprocess.Popen([sys.executable, "-c", HOLD_TEMP, str(root / f"{T1}.wav")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None and writer.stdin is not None
    live_tmp = Path(writer.stdout.readline().strip())
    try:
        TrackLibrary(root)  # what a second daemon (or the CLI) does at start
        assert live_tmp.exists(), "a starting process deleted a live writer's temp file"
    finally:
        writer.stdin.close()
        writer.wait(timeout=30)
    # Its owner is gone now (and its lock with it): the next start cleans it up.
    TrackLibrary(root)
    assert not live_tmp.exists()


def test_a_temp_named_as_before_is_kept_while_its_writer_may_still_be_running(tmp_path):
    """The old shared name ``<id>.wav.tmp`` tells no owner: only age can make it stale."""
    root = tmp_path / "tracks"
    root.mkdir()
    fresh = root / f"{T1}.wav.tmp"
    old = root / f"{T2}.wav.tmp"
    fresh.write_bytes(b"x")
    old.write_bytes(b"x")
    os.utime(old, (time.time() - 2 * 86400,) * 2)
    TrackLibrary(root)
    assert fresh.exists() and not old.exists()


SAVER = r"""
import sys
from lofi_daemon.settings import Settings
s = Settings.load()
failures = 0
for i in range(int(sys.argv[1])):
    s.prefs.default_backend = f"procedural"
    s.prefs.extra["writer"] = f"{sys.argv[2]}-{i}"
    try:
        s.save_prefs()
    except OSError as exc:
        failures += 1
        print(exc, file=sys.stderr)
print(failures)
"""


def test_concurrent_config_saves_never_fail_and_readers_never_see_a_partial_file(tmp_path):
    env = {**os.environ, "LOFI_CACHE_DIR": str(tmp_path / "cache"), "LOFI_CONFIG_DIR": str(tmp_path / "config")}
    savers = [subprocess.Popen([sys.executable, "-c", SAVER, "300", str(n)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for n in range(3)]
    config = tmp_path / "config" / "config.json"
    reads = bad = 0
    while any(p.poll() is None for p in savers):
        try:
            text = config.read_text()
        except FileNotFoundError:
            continue
        reads += 1
        try:
            assert json.loads(text)["default_backend"] == "procedural"
        except (ValueError, KeyError, AssertionError):
            bad += 1
    outputs = [p.communicate() for p in savers]
    assert [out.strip() for out, _ in outputs] == ["0", "0", "0"], outputs
    assert reads > 0 and bad == 0, f"{bad} of {reads} reads saw a broken config.json"
    assert not [p.name for p in config.parent.iterdir() if p.name != "config.json"]


def test_the_daemon_lists_what_other_processes_write_and_delete(cache_dir):
    """Another process (the CLI in-process, a second daemon) shares the tracks folder."""
    tracks = cache_dir / "tracks"
    with Daemon.start(cache_dir) as d:
        reply = d.call("generate", prompt="mine", duration_sec=5, seed=1)
        mine = d.wait_terminal(reply["result"]["track_id"])["track_id"]
        assert [t["track_id"] for t in d.call("list_tracks")["result"]["tracks"]] == [mine]

        other = TrackLibrary(tracks)  # another process's view of the same folder
        other.save(T1, b"RIFF....", "wav", {"prompt": "theirs", "created_at": time.time() + 10})
        assert [t["track_id"] for t in d.call("list_tracks")["result"]["tracks"]] == [T1, mine]

        other.delete(T1)
        assert [t["track_id"] for t in d.call("list_tracks")["result"]["tracks"]] == [mine]
        assert d.call("delete_track", track_id=T1)["error"]["data"]["error_code"] == "TRACK_NOT_FOUND"

        (tracks / f"{mine}.wav").unlink()  # the user deletes the audio file by hand
        assert d.call("list_tracks")["result"]["tracks"] == []
        again = d.call("generate", prompt="mine", duration_sec=5, seed=1)["result"]
        assert again["status"] != "cached"
        d.wait_terminal(again["track_id"])

    # ...and a library in another process sees the daemon's deletions too.
    other = TrackLibrary(tracks)
    assert [t.track_id for t in other.list()] == [again["track_id"]]
    with Daemon.start(cache_dir) as d:
        assert d.call("delete_track", track_id=again["track_id"])["result"]["deleted"] is True
    assert other.list() == [] and other.find_cached("x") is None


def test_a_config_save_removes_temps_left_by_a_killed_saver_but_not_a_planted_link(tmp_path, canary):
    env = {"LOFI_CACHE_DIR": str(tmp_path / "cache"), "LOFI_CONFIG_DIR": str(tmp_path / "config")}
    from lofi_daemon.settings import Settings

    config = tmp_path / "config"
    config.mkdir()
    dead = config / f"config.json.{2**22 + 1}.abcd.tmp"  # a pid above pid_max: its owner is gone
    dead.write_text("{")
    link = config / "config.json.tmp"
    link.symlink_to(canary / "notes.txt")
    Settings.load(env=env).save_prefs()
    assert not dead.exists() and link.is_symlink()
