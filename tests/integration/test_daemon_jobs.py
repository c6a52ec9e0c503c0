"""Generating through the daemon process: queue, cancel, progress, cache, files, backends."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from daemon_client import Daemon


@pytest.fixture
def daemon(cache_dir):
    with Daemon.start(cache_dir) as d:
        yield d


def sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_generate_answers_at_once_then_writes_a_48k_wav_with_a_sidecar(daemon, cache_dir):
    reply = daemon.call("generate", prompt="lofi hip hop, jazzy piano, vinyl crackle", duration_sec=8, seed=11)
    result = reply["result"]
    assert result["status"] == "generating" and result["position"] == 0
    assert result["seed"] == 11 and result["backend"] == "procedural"
    daemon.wait_for("generation_started", track_id=result["track_id"])
    done = daemon.wait_for("generation_complete", track_id=result["track_id"])
    path = Path(done["path"])
    assert path.parent == cache_dir / "tracks" and path.suffix == ".wav"
    info = sf.info(str(path))
    assert info.samplerate == 48000 and info.channels == 2
    assert abs(info.frames / 48000 - 8.0) < 0.1
    assert done["duration_sec"] == pytest.approx(info.frames / 48000, abs=1e-3)
    assert done["sample_rate"] == 48000 and done["seed"] == 11 and done["model_version"]
    sidecar = json.loads(path.with_suffix(".json").read_text())
    for key in ("prompt", "backend", "model_version", "seed", "params", "device", "dtype", "sample_rate",
                "duration_sec", "generation_time_sec", "sha256"):
        assert key in sidecar, key
    assert sidecar["sha256"] == sha256(done["path"])


def test_a_random_seed_is_chosen_and_reported_when_none_is_given(daemon):
    result = daemon.call("generate", prompt="rain", duration_sec=5)["result"]
    done = daemon.wait_for("generation_complete", track_id=result["track_id"])
    assert isinstance(result["seed"], int) and done["seed"] == result["seed"]


def test_progress_is_monotone_reaches_100_and_carries_eta(daemon):
    track = daemon.call("generate", prompt="chill", duration_sec=30, seed=2)["result"]["track_id"]
    daemon.wait_for("generation_complete", track_id=track)
    progress = daemon.notifications("generation_progress", track_id=track)
    assert len(progress) >= 5
    percents = [p["percent"] for p in progress]
    assert percents == sorted(percents) and percents[-1] == 100.0
    assert all(0 <= p <= 100 for p in percents)
    assert {"compose", "bars", "master"} <= {p["phase"] for p in progress}
    assert all(p["eta_sec"] is None or p["eta_sec"] >= 0 for p in progress)
    assert all(p["current_step"] <= p["total_steps"] for p in progress)


def test_sixth_waiting_job_is_refused_with_queue_full(daemon):
    ids = [daemon.call("generate", prompt="chill", duration_sec=240, seed=100 + i)["result"] for i in range(6)]
    assert ids[0]["status"] == "generating"
    assert [r["position"] for r in ids[1:]] == [1, 2, 3, 4, 5]
    assert all(r["status"] == "queued" for r in ids[1:])
    refused = daemon.call("generate", prompt="chill", duration_sec=240, seed=999)
    assert refused["error"]["code"] == -32003
    assert refused["error"]["data"]["error_code"] == "QUEUE_FULL"
    assert refused["error"]["data"]["queue_length"] == 5
    assert refused["error"]["data"]["estimated_wait_sec"] > 0
    status = daemon.call("get_status")["result"]
    assert status["current"]["track_id"] == ids[0]["track_id"]
    assert [j["track_id"] for j in status["queue"]] == [r["track_id"] for r in ids[1:]]
    for r in ids:
        daemon.call("cancel", track_id=r["track_id"])
    for r in ids:
        assert daemon.wait_terminal(r["track_id"], timeout=30)["method"] == "generation_cancelled"


def test_cancel_of_a_queued_job_removes_it_and_the_next_one_runs(daemon):
    first = daemon.call("generate", prompt="chill", duration_sec=20, seed=1)["result"]["track_id"]
    second = daemon.call("generate", prompt="chill", duration_sec=5, seed=2)["result"]["track_id"]
    third = daemon.call("generate", prompt="chill", duration_sec=5, seed=3)["result"]["track_id"]
    assert daemon.call("cancel", track_id=second)["result"] == {"cancelled": True, "was_generating": False}
    assert daemon.wait_terminal(second)["method"] == "generation_cancelled"
    assert daemon.wait_terminal(first)["method"] == "generation_complete"
    assert daemon.wait_terminal(third)["method"] == "generation_complete"
    assert daemon.notifications("generation_started", track_id=second) == []
    again = daemon.call("cancel", track_id=third)
    assert again["error"]["data"]["error_code"] == "ALREADY_COMPLETE"


def test_cancel_of_the_running_job_stops_it_within_one_step(daemon):
    track = daemon.call("generate", prompt="chill", duration_sec=240, seed=5)["result"]["track_id"]
    waiting = daemon.call("generate", prompt="chill", duration_sec=5, seed=6)["result"]["track_id"]
    daemon.wait_for("generation_progress", track_id=track, phase="bars")
    step_before = daemon.call("get_status")["result"]["current"]["progress"]["current_step"]
    reply = daemon.call("cancel", track_id=track)["result"]
    assert reply == {"cancelled": True, "was_generating": True}
    end = daemon.wait_terminal(track, timeout=20)
    assert end["method"] == "generation_cancelled"
    # it stopped at the bar after the one running when cancel arrived (a bar is ~0.1 s here)
    assert step_before <= end["at_step"] <= step_before + 2 and end["total_steps"] > end["at_step"]
    assert daemon.wait_terminal(waiting)["method"] == "generation_complete"  # the next job starts
    tracks_dir = Path(daemon.call("list_tracks")["result"]["tracks"][0]["path"]).parent
    assert not list(tracks_dir.glob(f"{track}*"))  # nothing half-written is left


def test_every_job_ends_in_exactly_one_terminal_notification(daemon):
    ids = [daemon.call("generate", prompt="rain", duration_sec=5, seed=s)["result"]["track_id"] for s in (1, 2, 3)]
    daemon.call("cancel", track_id=ids[1])
    for t in ids:
        daemon.wait_terminal(t)
    daemon.call("ping")
    for t in ids:
        ends = [m for m in daemon.messages if isinstance(m, dict)
                and m.get("method") in ("generation_complete", "generation_error", "generation_cancelled")
                and m["params"]["track_id"] == t]
        assert len(ends) == 1, t


def test_same_request_and_seed_give_a_bit_identical_file(cache_dir, tmp_path):
    hashes = []
    for run in range(2):
        with Daemon.start(tmp_path / f"cache{run}") as d:
            track = d.call("generate", prompt="jazzy rain", duration_sec=12, seed=4242)["result"]["track_id"]
            hashes.append(sha256(d.wait_for("generation_complete", track_id=track)["path"]))
    assert hashes[0] == hashes[1]


def test_a_procedural_file_is_its_seamless_render_to_the_edges_so_loops_do_not_dip(daemon):
    from lofi_daemon.cancel import CancelToken
    from lofi_daemon.backends.procedural import render

    class Quiet:
        def plan(self, phases): pass
        def update(self, phase, current, total): pass

    track = daemon.call("generate", prompt="jazzy rain", duration_sec=6, seed=9)["result"]["track_id"]
    path = Path(daemon.wait_for("generation_complete", track_id=track)["path"])
    written, rate = sf.read(str(path), dtype="float32", always_2d=True)
    rendered = render("jazzy rain", 6, 9, Quiet(), CancelToken()).samples.T
    edges = np.r_[0:240, -240:0]  # the 5 ms an edge fade would take at each end
    assert np.abs(rendered[edges]).max() > 0.05  # music right up to the edges: a fade would show
    assert rate == 48000 and written.shape == rendered.shape
    assert np.abs(written - rendered).max() <= 3 / 32768  # PCM16 rounding, edges included
    assert json.loads(path.with_suffix(".json").read_text())["loopable"] is True


def test_identical_request_is_served_from_the_cache_at_once(daemon):
    first = daemon.call("generate", prompt="rain", duration_sec=6, seed=77)["result"]
    done = daemon.wait_for("generation_complete", track_id=first["track_id"])
    again = daemon.call("generate", prompt="rain", duration_sec=6, seed=77)["result"]
    assert again["status"] == "cached" and again["track_id"] == first["track_id"]
    cached_done = daemon.wait_for("generation_complete", track_id=first["track_id"], timeout=5)
    assert cached_done["path"] == done["path"]
    other = daemon.call("generate", prompt="rain", duration_sec=6, seed=78)["result"]
    assert other["status"] == "generating"
    # a finished track from the library is complete, not unknown
    assert daemon.call("cancel", track_id=first["track_id"])["error"]["data"]["error_code"] == "ALREADY_COMPLETE"


def test_formats_flac_and_ogg_are_written(daemon):
    for fmt in ("flac", "ogg"):
        track = daemon.call("generate", prompt="rain", duration_sec=5, seed=1, format=fmt)["result"]["track_id"]
        path = daemon.wait_for("generation_complete", track_id=track)["path"]
        assert path.endswith("." + fmt)
        assert sf.info(path).samplerate == 48000


def test_list_and_delete_tracks(daemon):
    track = daemon.call("generate", prompt="rain", duration_sec=5, seed=1)["result"]["track_id"]
    path = daemon.wait_for("generation_complete", track_id=track)["path"]
    listed = daemon.call("list_tracks")["result"]["tracks"]
    assert [t["track_id"] for t in listed] == [track]
    assert listed[0]["prompt"] == "rain" and listed[0]["path"] == path
    assert daemon.call("delete_track", track_id=track)["result"]["deleted"] is True
    assert not Path(path).exists() and not Path(path).with_suffix(".json").exists()
    assert daemon.call("list_tracks")["result"]["tracks"] == []
    assert daemon.call("delete_track", track_id=track)["error"]["code"] == -32006


def test_tracks_survive_a_restart(cache_dir):
    with Daemon.start(cache_dir) as d:
        track = d.call("generate", prompt="rain", duration_sec=5, seed=1)["result"]["track_id"]
        d.wait_for("generation_complete", track_id=track)
    with Daemon.start(cache_dir) as d:
        assert [t["track_id"] for t in d.call("list_tracks")["result"]["tracks"]] == [track]
        assert d.call("generate", prompt="rain", duration_sec=5, seed=1)["result"]["status"] == "cached"


def test_get_backends_describes_every_backend(daemon):
    result = daemon.call("get_backends")["result"]
    assert result["default_backend"] == "procedural"
    names = [b["name"] for b in result["backends"]]
    assert names == ["procedural", "musicgen", "ace_step", "ace_step_15", "stable_audio_3"]
    proc = result["backends"][0]
    assert proc["status"] == "ready" and proc["min_duration_sec"] == 5 and proc["max_duration_sec"] == 240
    assert proc["sample_rate"] == 48000 and proc["size_bytes"] == 0


def test_uninstalled_backend_answers_with_the_setup_hint(daemon):
    for name in ("musicgen", "ace-step"):
        reply = daemon.call("generate", prompt="rain", duration_sec=10, backend=name)
        assert reply["error"]["data"]["error_code"] == "BACKEND_NOT_INSTALLED"
        assert ":LofiSetup" in reply["error"]["data"]["hint"]
        assert daemon.call("set_backend", backend=name)["error"]["data"]["error_code"] == "BACKEND_NOT_INSTALLED"


def test_set_backend_persists_the_default_across_restarts(cache_dir):
    with Daemon.start(cache_dir) as d:
        assert d.call("set_backend", backend="procedural")["result"]["backend"] == "procedural"
    config = json.loads((cache_dir / "config" / "config.json").read_text())
    assert config["default_backend"] == "procedural"


def test_backend_parameters_of_another_backend_are_rejected(daemon):
    reply = daemon.call("generate", prompt="rain", duration_sec=10, inference_steps=10)
    assert reply["error"]["code"] == -32602
    assert reply["error"]["data"]["field"] == "inference_steps"
