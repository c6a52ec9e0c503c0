"""A damaged library track is refused with TRACK_DAMAGED, and the hint offers to make it again.

The sidecar recorded the sha256 of the audio when the track was committed: ``play`` checks the
file against it (once per file version) before the worker ever sees it. A sidecar without a
hash (an older daemon's) still records the duration: the worker refuses a file of another length.
"""

from __future__ import annotations

import json
from pathlib import Path

from playback_helpers import RATE, generate, playback, start, wait_until


def test_a_truncated_track_is_refused_and_the_regenerate_request_makes_it_again(cache_dir, tmp_path):
    cap = tmp_path / "out.f32"
    with start(cache_dir, f"capture {cap} 0") as d:
        track = generate(d, "rainy jazz", 5, seed=7)
        path = Path(track["path"])
        whole = path.read_bytes()
        path.write_bytes(whole[:100])  # what the issue found playing 7 frames as if whole
        reply = d.call("play", track_id=track["track_id"])
        error = reply["error"]
        assert error["data"]["error_code"] == "TRACK_DAMAGED"
        assert track["track_id"] in error["message"] and "sha256" in error["message"]
        assert "Generate it again" in error["data"]["hint"] and "7" in error["data"]["hint"]
        again = error["data"]["regenerate"]
        # the same request, with the backend's own parameters as they were resolved
        assert again == {"prompt": "rainy jazz", "duration_sec": 5, "backend": "procedural", "seed": 7,
                         "format": again["format"], "section_offset": 0}
        assert not cap.exists()  # nothing of the damaged file was played
        # The same request is not answered from the cache with the damaged file: it is made again.
        made = d.call("generate", **again)["result"]
        assert made["status"] != "cached" and made["track_id"] != track["track_id"]
        done = d.wait_terminal(made["track_id"], timeout=120)
        assert Path(done["path"]).read_bytes() == whole  # same request, same seed: the same track
        assert d.call("play", track_id=made["track_id"])["result"]["playing"]
        wait_until(lambda: cap.exists() and cap.stat().st_size >= RATE * 8, 30, "the new track playing")
        d.call("stop")
        assert d.call("ping")["result"]["status"] == "ok"


def test_a_track_changed_in_place_is_refused_and_a_whole_one_plays(cache_dir, tmp_path):
    with start(cache_dir, f"capture {tmp_path / 'out.f32'} 0") as d:
        good = generate(d, "rainy jazz", 5, seed=1)
        bad = generate(d, "upbeat sunny", 5, seed=2)
        path = Path(bad["path"])
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF  # one byte: same size, same header, other audio
        path.write_bytes(bytes(data))
        assert d.call("play", track_id=bad["track_id"])["error"]["data"]["error_code"] == "TRACK_DAMAGED"
        assert d.call("play", track_id=good["track_id"])["result"]["playing"]
        wait_until(lambda: playback(d)["state"] == "playing", 30, "the whole track playing")
        d.call("stop")


def test_without_a_hash_the_worker_refuses_a_file_shorter_than_its_sidecar_says(cache_dir, tmp_path):
    with start(cache_dir, f"capture {tmp_path / 'out.f32'} 0") as d:
        track = generate(d, "rainy jazz", 5, seed=3, format="wav")
        path = Path(track["path"])
        sidecar = path.with_suffix(".json")
        meta = json.loads(sidecar.read_text())
        del meta["sha256"]  # as an older daemon wrote it
        sidecar.write_text(json.dumps(meta))
        data = path.read_bytes()
        path.write_bytes(data[:len(data) // 2])  # half the frames; the header still claims all
        assert d.call("play", track_id=track["track_id"])["result"]["playing"]
        error = d.wait_for("playback_error", timeout=30)
        assert error["code"] == "TRACK_DAMAGED" and "its sidecar" in error["message"]
        assert playback(d)["state"] == "stopped" and d.call("ping")["result"]["status"] == "ok"
