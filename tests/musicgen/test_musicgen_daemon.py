"""MusicGen through the real daemon process, over its stdin/stdout pipes.

The tiny checkpoint is installed in the daemon's cache exactly where setup puts a
download; the daemon finds it, loads it offline and writes 48 kHz tracks.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
import soundfile as sf

from musicgen_helpers import make_backend
from daemon_client import Daemon

# One OpenMP thread: the toy model gains nothing from more, and on a shared CPU spinning
# threads slow it down many times over. LOFI_DEVICE keeps a developer's GPU out of it.
DAEMON_ENV = {"OMP_NUM_THREADS": "1", "LOFI_DEVICE": "cpu"}


def sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, tiny_checkpoint):
    cache = tmp_path_factory.mktemp("musicgen-daemon") / "cache"
    make_backend(cache, tiny_checkpoint)  # installs into <cache>/models like :LofiSetup musicgen
    with Daemon.start(cache, DAEMON_ENV) as d:
        yield d


def generate(daemon, **params):
    reply = daemon.call("generate", backend="musicgen", **params)
    assert "result" in reply, reply
    return reply["result"]


def test_musicgen_is_listed_as_installed_with_its_range_and_parameters(daemon):
    backends = {b["name"]: b for b in daemon.call("get_backends")["result"]["backends"]}
    musicgen = backends["musicgen"]
    assert musicgen["status"] in ("installed", "ready")
    assert (musicgen["min_duration_sec"], musicgen["max_duration_sec"], musicgen["sample_rate"]) == (5, 30, 32000)
    params = {p["name"]: p for p in musicgen["parameters"]}
    assert params["guidance_scale"]["default"] == 3.0 and params["top_k"]["default"] == 250
    assert set(params) == {"guidance_scale", "temperature", "top_k", "top_p"}


def test_generate_writes_a_48k_stereo_file_of_the_requested_length(daemon):
    track = generate(daemon, prompt="lofi hip hop, warm keys", duration_sec=6.5, seed=5)["track_id"]
    done = daemon.wait_for("generation_complete", timeout=300, track_id=track)
    info = sf.info(done["path"])
    assert (info.samplerate, info.channels) == (48000, 2)
    assert abs(info.frames / 48000 - 6.5) < 0.1
    assert done["backend"] == "musicgen" and done["model_version"].startswith("facebook/musicgen-small@")
    progress = daemon.notifications("generation_progress", track_id=track)
    percents = [p["percent"] for p in progress]
    assert percents == sorted(percents) and percents[-1] == 100
    tokens = [p for p in progress if p["phase"] == "tokens"]
    assert tokens and all(p["total_steps"] == 6.5 * 50 + 3 for p in tokens)


def test_parameters_out_of_range_are_rejected_before_queueing(daemon):
    reply = daemon.call("generate", backend="musicgen", prompt="x", duration_sec=5, top_k=99999)
    assert reply["error"]["data"]["error_code"] == "INVALID_PARAMS"
    assert "top_k" in reply["error"]["message"]
    reply = daemon.call("generate", backend="musicgen", prompt="x", duration_sec=31)
    assert reply["error"]["data"]["error_code"] == "INVALID_DURATION"


def test_same_seed_gives_an_identical_file_and_another_seed_a_different_one(daemon):
    request = {"prompt": "rainy night jazz", "duration_sec": 5, "seed": 31337}
    first = generate(daemon, **request)["track_id"]
    first_hash = sha256(daemon.wait_for("generation_complete", timeout=300, track_id=first)["path"])
    daemon.call("delete_track", track_id=first)  # otherwise the library answers from its cache

    other = generate(daemon, **{**request, "seed": 31338})["track_id"]
    other_hash = sha256(daemon.wait_for("generation_complete", timeout=300, track_id=other)["path"])

    again = generate(daemon, **request)
    assert again["status"] != "cached"
    again_hash = sha256(daemon.wait_for("generation_complete", timeout=300, track_id=again["track_id"])["path"])
    assert again_hash == first_hash
    assert other_hash != first_hash


def test_cancel_stops_a_musicgen_job_and_the_next_one_runs(daemon):
    track = generate(daemon, prompt="slow ambient", duration_sec=30, seed=8)["track_id"]
    waiting = generate(daemon, prompt="slow ambient", duration_sec=5, seed=9)["track_id"]
    deadline = time.monotonic() + 300
    while not daemon.notifications("generation_progress", track_id=track, phase="tokens"):
        assert time.monotonic() < deadline, "no token progress"
        time.sleep(0.05)
    assert daemon.call("cancel", track_id=track)["result"] == {"cancelled": True, "was_generating": True}
    end = daemon.wait_terminal(track, timeout=60)
    assert end["method"] == "generation_cancelled"
    reported = max(p["current_step"] for p in daemon.notifications("generation_progress", track_id=track,
                                                                   phase="tokens"))
    assert reported <= end["at_step"] < end["total_steps"] == 1503
    assert daemon.wait_terminal(waiting, timeout=300)["method"] == "generation_complete"
    assert not daemon.notifications("generation_complete", track_id=track)


def test_corrupt_weights_end_the_job_with_model_load_failed(tmp_path, tiny_checkpoint):
    cache = tmp_path / "cache"
    backend = make_backend(cache, tiny_checkpoint)
    weights = backend.snapshot_dir / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-4096:] = bytes(4096)  # same size, different bytes: only the checksum can tell
    weights.write_bytes(bytes(data))
    with Daemon.start(cache, DAEMON_ENV) as daemon:
        track = generate(daemon, prompt="x", duration_sec=5, seed=1)["track_id"]
        end = daemon.wait_terminal(track, timeout=120)
        assert end["method"] == "generation_error"
        assert end["code"] == "MODEL_LOAD_FAILED" and ":LofiSetup musicgen" in end["hint"]
        assert daemon.call("ping")["result"]["status"] == "ok"  # the daemon lives on
