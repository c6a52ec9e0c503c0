"""Every file the daemon reads is untrusted: sidecars and config.json that lie.

A cache gets synced and shared, so a sidecar can arrive that names a file outside the cache,
a track id that walks up the tree, values of the wrong type, or a symlink. The daemon must
start, list only real tracks, never touch (or hand out) a path outside its tracks folder,
and say in its log what it skipped. A canary tree outside the cache is hashed before and
after (the ``canary`` fixture fails the test if anything in it changed).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from daemon_client import Daemon

GOOD_ID = "t0123456789ab"
HEX = "c" * 64


def good_sidecar(tid: str = GOOD_ID, **over) -> dict:
    track_id = tid
    meta = {"track_id": track_id, "file": f"{track_id}.wav", "format": "wav", "prompt": "rain",
            "backend": "procedural", "model_version": "1", "seed": 1, "duration_sec": 5.0,
            "requested_duration_sec": 5.0, "sample_rate": 48000, "channels": 2, "params": {},
            "generation_time_sec": 0.5, "created_at": 1700000000.0, "cache_key": HEX, "sha256": HEX}
    meta.update(over)
    return meta


# One bad value per field (wrong types and shapes), each in its own track.
WRONG_TYPES = {
    "track_id": [["x"], {"a": 1}, 5, None],
    "file": [["x"], {"a": 1}, 5, None],
    "format": [["wav"], 5, "mp3"],
    "cache_key": [["k"], {"k": 1}, 5, "not-hex"],
    "sha256": [["s"], 7, "zz"],
    "prompt": [["p"], {"p": 1}, 5],
    "backend": [["b"], 5],
    "model_version": [["m"], 5],
    "seed": ["1", 1.5, [1], True],
    "duration_sec": ["5", [5], True, 1e400],
    "requested_duration_sec": ["5", {}],
    "sample_rate": ["48000", 48000.5, [1]],
    "channels": ["2", [2]],
    "generation_time_sec": ["x", [1]],
    "created_at": ["yesterday", [1], {"t": 1}, None, True],
    "params": [[1, 2], "x", 5, {"a": {"deep": 1}}],
}


def plant(tracks: Path, track_id: str, meta: object, *, audio: bool = True) -> None:
    tracks.mkdir(parents=True, exist_ok=True)
    (tracks / f"{track_id}.json").write_text(json.dumps(meta))
    if audio:
        (tracks / f"{track_id}.wav").write_bytes(b"RIFF")


def hostile_library(tracks: Path, canary: Path) -> list[str]:
    """Plant every kind of hostile sidecar; returns the ids a client might try."""
    ids = []
    n = 0
    for field, values in WRONG_TYPES.items():
        for value in values:
            n += 1
            track_id = f"t{n:012x}"
            plant(tracks, track_id, good_sidecar(track_id, **{field: value}))
            ids.append(track_id)
    # Traversal and absolute paths in "file", and a track id that walks out of the folder.
    n += 1
    tid = f"t{n:012x}"
    plant(tracks, tid, good_sidecar(tid, file=str(canary / "notes.txt")))
    ids.append(tid)
    n += 1
    tid = f"t{n:012x}"
    plant(tracks, tid, good_sidecar(tid, file="../../canary/notes.txt"))
    ids.append(tid)
    rel = os.path.relpath(canary / "victim2", tracks)
    plant(tracks, "evil", good_sidecar(rel, file=f"{rel}.wav"), audio=False)
    ids.append(rel)
    # A sidecar that is a symlink to a valid-looking sidecar outside the cache.
    n += 1
    tid = f"t{n:012x}"
    outside = canary / "docs" / "thesis.txt"
    (tracks / f"{tid}.json").symlink_to(canary / "victim2.json")
    (tracks / f"{tid}.wav").write_bytes(b"RIFF")
    ids.append(tid)
    # A good sidecar whose audio is a symlink to a file outside the cache.
    n += 1
    tid = f"t{n:012x}"
    (tracks / f"{tid}.json").write_text(json.dumps(good_sidecar(tid)))
    (tracks / f"{tid}.wav").symlink_to(outside)
    ids.append(tid)
    # Not JSON, not an object, absurdly deep, and a FIFO that would block a reader.
    for i, text in enumerate(["{not json", "[1, 2]", "[" * 100_000 + "]" * 100_000, '"just a string"']):
        tid = f"t{0xf00 + i:012x}"
        (tracks / f"{tid}.json").write_text(text)
        (tracks / f"{tid}.wav").write_bytes(b"RIFF")
        ids.append(tid)
    tid = f"t{0xfff:012x}"
    os.mkfifo(tracks / f"{tid}.json")
    (tracks / f"{tid}.wav").write_bytes(b"RIFF")
    ids.append(tid)
    return ids


def test_hostile_sidecars_are_skipped_and_nothing_outside_the_cache_is_touched(cache_dir, canary):
    tracks = cache_dir / "tracks"
    ids = hostile_library(tracks, canary)
    plant(tracks, GOOD_ID, good_sidecar())
    with Daemon.start(cache_dir) as d:
        listed = d.call("list_tracks")["result"]["tracks"]
        assert [t["track_id"] for t in listed] == [GOOD_ID]
        assert listed[0]["path"] == str(tracks / f"{GOOD_ID}.wav")
        for track_id in ids:
            reply = d.call("delete_track", track_id=track_id)
            assert reply.get("error", {}).get("data", {}).get("error_code") in ("TRACK_NOT_FOUND", "INVALID_PARAMS"), (
                track_id, reply)
        # A fresh track still works next to the hostile ones.
        reply = d.call("generate", prompt="clean", duration_sec=5, seed=2)
        assert d.wait_terminal(reply["result"]["track_id"])["method"] == "generation_complete"
        assert d.call("delete_track", track_id=GOOD_ID)["result"]["deleted"] is True
    log = (cache_dir / "logs" / "daemon.log").read_text()
    assert "skipping sidecar" in log and "file '" in log


@pytest.mark.parametrize("field", ["track_id", "cache_key"])
@pytest.mark.parametrize("value", [["a", "b"], {"x": {"y": 1}}])
def test_a_sidecar_with_a_list_or_object_id_does_not_stop_the_daemon(cache_dir, canary, field, value):
    plant(cache_dir / "tracks", GOOD_ID, good_sidecar(**{field: value}))
    with Daemon.start(cache_dir) as d:
        assert d.call("list_tracks")["result"] == {"tracks": []}


def test_a_created_at_of_the_wrong_type_does_not_break_listing(cache_dir, canary):
    plant(cache_dir / "tracks", GOOD_ID, good_sidecar())
    plant(cache_dir / "tracks", "t" + "e" * 12, good_sidecar("t" + "e" * 12, created_at="yesterday"))
    with Daemon.start(cache_dir) as d:
        assert [t["track_id"] for t in d.call("list_tracks")["result"]["tracks"]] == [GOOD_ID]


def test_a_cached_generate_never_hands_out_a_path_outside_the_cache(cache_dir, canary):
    """A planted sidecar claims the cache key of the next request and points outside."""
    with Daemon.start(cache_dir) as d:
        first = d.call("generate", prompt="the real one", duration_sec=5, seed=3)["result"]
        done = d.wait_terminal(first["track_id"])
    real = json.loads((cache_dir / "tracks" / f"{first['track_id']}.json").read_text())
    for f in (cache_dir / "tracks").iterdir():
        f.unlink()
    plant(cache_dir / "tracks", GOOD_ID, good_sidecar(cache_key=real["cache_key"], file=str(canary / "notes.txt")))
    with Daemon.start(cache_dir) as d:
        again = d.call("generate", prompt="the real one", duration_sec=5, seed=3)["result"]
        assert again["status"] != "cached"
        done = d.wait_terminal(again["track_id"])
        assert Path(done["path"]).parent == cache_dir / "tracks"


# ----- config.json ------------------------------------------------------------------------------

CONFIG_WRONG = {
    "default_backend": [["procedural"], {"a": 1}, 5, None, ""],
    "device": [["cpu"], 5, "tpu"],
    "dtype": [{"a": 1}, "float8"],
    "low_vram": [True, "maybe"],
    "musicgen_model": [["facebook/musicgen-small"], 7],
    "output_format": ["mp3", ["wav"], 3],
    "ace_step_dir": [["/x"], 5, {"p": "/x"}],
    "ace_step_compile": ["yes", 3, [True]],
}


@pytest.mark.parametrize("field,value", [(f, v) for f, vs in CONFIG_WRONG.items() for v in vs],
                         ids=lambda x: json.dumps(x)[:20])
def test_a_config_value_of_the_wrong_type_is_named_in_the_log_and_the_daemon_works(cache_dir, field, value):
    config = cache_dir / "config"
    config.mkdir(parents=True)
    (config / "config.json").write_text(json.dumps({field: value}))
    with Daemon.start(cache_dir) as d:
        reply = d.call("generate", prompt="config check", duration_sec=5, seed=4)
        done = d.wait_terminal(reply["result"]["track_id"])
        assert done["method"] == "generation_complete", done
        assert done["path"].endswith(".wav")
        assert d.call("set_backend", backend="procedural")["result"]["backend"] == "procedural"
    log = (cache_dir / "logs" / "daemon.log").read_text()
    assert f"config: {field}" in log


@pytest.mark.parametrize("text", ["[" * 200_000 + "]" * 200_000, '{"a":' * 50_000 + "1" + "}" * 50_000,
                                  "[]", "null", "\xff\xfe"])
def test_a_deeply_nested_or_non_object_config_does_not_stop_the_daemon(cache_dir, text):
    config = cache_dir / "config"
    config.mkdir(parents=True)
    (config / "config.json").write_text(text, encoding="latin-1")
    with Daemon.start(cache_dir) as d:
        assert d.call("ping")["result"]["status"] == "ok"
        reply = d.call("generate", prompt="nested", duration_sec=5, seed=4)
        assert d.wait_terminal(reply["result"]["track_id"])["method"] == "generation_complete"
    assert "config:" in (cache_dir / "logs" / "daemon.log").read_text()


def test_config_symlinks_are_never_written_through(cache_dir, canary):
    """A planted ``config.json.tmp`` (the old temp name) and a symlinked config.json:
    saving replaces files in the config folder, never what a link points at."""
    config = cache_dir / "config"
    config.mkdir(parents=True)
    (config / "config.json.tmp").symlink_to(canary / "notes.txt")
    (config / "config.json").symlink_to(canary / "victim2.json")
    with Daemon.start(cache_dir) as d:
        assert d.call("set_backend", backend="procedural")["result"]["backend"] == "procedural"
    saved = config / "config.json"
    assert not saved.is_symlink() and json.loads(saved.read_text())["default_backend"] == "procedural"
    assert (config / "config.json.tmp").is_symlink()  # left alone, not written through


def test_a_config_fifo_does_not_hang_the_daemon(cache_dir):
    config = cache_dir / "config"
    config.mkdir(parents=True)
    os.mkfifo(config / "config.json")
    with Daemon.start(cache_dir) as d:
        assert d.call("ping", timeout=30)["result"]["status"] == "ok"


# ----- the model store's install record ---------------------------------------------------------

def hostile_records(canary: Path) -> list[object]:
    base = {"backend": "musicgen", "repo_id": "facebook/musicgen-small", "revision": "x", "commit": "x",
            "complete": True, "verified": {}, "bad": []}
    notes = canary / "notes.txt"
    escape = {"path": "../../../../../canary/notes.txt", "component": "model", "size": notes.stat().st_size}
    return [
        {**base, "files": [escape]},
        {**base, "files": [{**escape, "path": str(notes)}]},
        {**base, "files": [{"path": "model.safetensors", "component": "model", "size": "12"}]},
        {**base, "files": [{"path": ["x"], "component": "model", "size": 1}]},
        {**base, "files": "model.safetensors"},
        {**base, "verified": {"model.safetensors": "yes"}, "files": []},
        {**base, "complete": "yes", "files": []},
        [1, 2, 3],
    ]


@pytest.mark.parametrize("case", range(8))
def test_a_hostile_install_record_is_ignored_and_nothing_outside_is_read_as_a_model(cache_dir, canary, case):
    from lofi_daemon.models.manifests import musicgen_manifest
    from lofi_daemon.models.store import ModelStore

    manifest = musicgen_manifest("facebook/musicgen-small")
    store = ModelStore(cache_dir / "models")
    record = store.record_path(manifest)
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps(hostile_records(canary)[case]))
    with Daemon.start(cache_dir) as d:
        backends = d.call("get_backends")["result"]["backends"]
        assert {b["name"]: b["status"] for b in backends}["musicgen"] != "installed"
    assert "ignoring unreadable install record" in (cache_dir / "logs" / "daemon.log").read_text()
