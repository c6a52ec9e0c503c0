"""``ace_step_15`` through a real ``lofi-daemon`` process: setup from the fake hub, then offline use.

The fake hub serves the tiny ACE-Step 1.5 in the upstream layout as ``ACE-Step/Ace-Step1.5``
(the repo the 2B turbo lives in). The daemon runs as the plugin runs it (real pipes,
``HF_HUB_OFFLINE=1``, so downloads go through its worker process), sets the backend up with
``download_backend`` (download + conversion), and then generates with the hub stopped.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from daemon_client import Daemon
from fakehub import FakeHub, FakeRepo

from lofi_daemon.models.manifests import ACE_STEP_15_MAIN_REPO

PROMPT = "lo-fi hip hop, mellow piano, vinyl crackle, relaxed"
LATENT_SAMPLES = 1920  # 48 kHz / 25 latents per second


def _env(**extra: str) -> dict[str, str]:
    # One torch thread: CI shares 2 cores between test processes.
    return {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "LOFI_LOG_LEVEL": "INFO", **extra}


def _backend(d: Daemon, name: str = "ace_step_15") -> dict:
    return next(b for b in d.call("get_backends")["result"]["backends"] if b["name"] == name)


def _generate(d: Daemon, duration: float, **params) -> dict:
    reply = d.call("generate", prompt=PROMPT, duration_sec=duration, backend="ace-step-1.5", **params)
    assert "result" in reply, reply
    return reply["result"]


def _repo(hub_files: dict[str, bytes]) -> FakeRepo:
    # The real repo also holds the 5 Hz planner LM and more: setup must leave those alone.
    others = {"acestep-5Hz-lm-1.7B/config.json": b"{}", "acestep-5Hz-lm-1.7B/model.safetensors": b"\0" * 300_000,
              "README.md": b"# ACE-Step 1.5"}
    return FakeRepo(ACE_STEP_15_MAIN_REPO, {**hub_files, **others})


@pytest.fixture(scope="module")
def setup_run(tmp_path_factory, hub_files):
    """One daemon that set the backend up from the fake hub; the hub is stopped afterwards."""
    root = tmp_path_factory.mktemp("ace15-daemon")
    hub = FakeHub([_repo(hub_files)]).start()
    with Daemon.start(root / "cache", _env(HF_ENDPOINT=hub.endpoint)) as d:
        before = _backend(d)
        started = d.call("download_backend", backend="ace-step-1.5")
        done = d.wait_for("download_complete", timeout=240, backend="ace_step_15")
        hub.stop()  # from here on any request to the hub would fail: loading must be offline
        yield {"daemon": d, "before": before, "started": started, "done": done, "root": root}


@pytest.fixture(scope="module")
def daemon(setup_run) -> Daemon:
    return setup_run["daemon"]


def test_setup_downloads_each_component_then_converts_and_the_backend_is_installed(setup_run, hub_files):
    d = setup_run["daemon"]
    assert setup_run["before"]["status"] == "not_installed"
    assert setup_run["before"]["min_duration_sec"] == 10.0 and setup_run["before"]["max_duration_sec"] == 600.0
    assert setup_run["started"]["result"] == {"started": True, "already_installed": False}
    reports = d.notifications("download_progress", backend="ace_step_15")
    components = list(dict.fromkeys(r["component"] for r in reports))
    assert components == ["dit", "vae", "text_encoder", "convert"]
    downloads = [r for r in reports if r["component"] != "convert"]
    assert [r["overall_percent"] for r in downloads] == sorted(r["overall_percent"] for r in downloads)
    assert downloads[-1]["overall_percent"] == 100.0
    converting = [r["component_percent"] for r in reports if r["component"] == "convert"]
    assert converting[0] == 0.0 and converting[-1] == 100.0 and converting == sorted(converting)
    # Exactly the variant's files: not the 5 Hz LM or the other DiTs a full repo holds.
    expected = sum(len(v) for v in hub_files.values())
    assert downloads[-1]["bytes_total"] == expected
    info = _backend(d)
    assert info["status"] == "installed" and info["size_bytes"] == expected
    assert d.call("download_backend", backend="ace_step_15")["result"]["already_installed"] is True


def test_parameters_are_listed_with_the_turbo_defaults(daemon):
    params = {p["name"]: p for p in _backend(daemon)["parameters"]}
    assert (params["inference_steps"]["default"], params["shift"]["default"]) == (8, 3.0)
    assert params["guidance_scale"]["default"] == 1.0
    assert params["instrumental_tag"]["default"] == "[Instrumental]"
    assert {"cfg_interval_start", "cfg_interval_end", "bpm", "keyscale", "timesignature"} <= set(params)
    assert "A minor" in params["keyscale"]["choices"] and params["timesignature"]["choices"] == ["", "2", "3", "4", "6"]


def test_a_30_s_track_is_a_48k_file_of_750_latents_with_monotone_progress_through_decode_tiles(daemon):
    job = _generate(daemon, 30, seed=1, inference_steps=8)
    done = daemon.wait_for("generation_complete", timeout=240, track_id=job["track_id"])
    info = sf.info(done["path"])
    assert (info.samplerate, info.channels, info.frames) == (48000, 2, 750 * LATENT_SAMPLES)
    progress = daemon.notifications("generation_progress", track_id=job["track_id"])
    percents = [p["percent"] for p in progress]
    assert percents == sorted(percents) and percents[-1] == 100.0
    phases = [p["phase"] for p in progress]
    assert phases.index("diffusion") < phases.index("decode")
    assert {p["total_steps"] for p in progress if p["phase"] == "diffusion"} == {8}
    assert {p["total_steps"] for p in progress if p["phase"] == "decode"} == {2}  # 750 latents: two tiles
    meta = json.loads(Path(done["path"]).with_suffix(".json").read_text())
    assert meta["backend"] == "ace_step_15" and meta["model_version"].endswith(":turbo")


def test_the_same_seed_regenerated_gives_an_identical_file(daemon):
    first = _generate(daemon, 10, seed=77, inference_steps=4)
    path = daemon.wait_for("generation_complete", timeout=240, track_id=first["track_id"])["path"]
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    assert "result" in daemon.call("delete_track", track_id=first["track_id"])
    again = _generate(daemon, 10, seed=77, inference_steps=4)
    assert again["status"] != "cached"
    path = daemon.wait_for("generation_complete", timeout=240, track_id=again["track_id"])["path"]
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == digest


def test_cancel_during_denoising_ends_cancelled_without_decoding_and_the_next_job_runs(daemon):
    long_job = _generate(daemon, 120, seed=5, inference_steps=200)
    waiting = _generate(daemon, 10, seed=6, inference_steps=2)
    deadline = time.monotonic() + 240
    while not [p for p in daemon.notifications("generation_progress", track_id=long_job["track_id"])
               if p["phase"] == "diffusion" and p["current_step"] >= 1]:
        assert time.monotonic() < deadline, "no denoising progress"
        time.sleep(0.02)
    assert daemon.call("cancel", track_id=long_job["track_id"])["result"]["was_generating"] is True
    end = daemon.wait_terminal(long_job["track_id"], timeout=120)
    assert end["method"] == "generation_cancelled"
    assert 1 <= end["at_step"] < 200 and end["total_steps"] == 200
    assert not [p for p in daemon.notifications("generation_progress", track_id=long_job["track_id"])
                if p["phase"] == "decode"]
    assert daemon.wait_terminal(waiting["track_id"], timeout=240)["method"] == "generation_complete"


def test_a_duration_outside_10_to_600_s_is_refused(daemon):
    reply = daemon.call("generate", prompt=PROMPT, duration_sec=5, backend="ace_step_15")
    assert reply["error"]["data"]["error_code"] == "INVALID_DURATION"


def _copy_install(setup_run, tmp_path: Path) -> Path:
    cache = tmp_path / "cache"
    shutil.copytree(setup_run["root"] / "cache" / "models", cache / "models")
    return cache


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only a checksum can tell
    path.write_bytes(bytes(data))


def test_corrupt_downloaded_weights_are_model_load_failed_with_the_setup_hint(setup_run, tmp_path):
    cache = _copy_install(setup_run, tmp_path)
    weights = next(cache.glob("models/models--ACE-Step--Ace-Step1.5/snapshots/*/acestep-v15-turbo/model.safetensors"))
    _flip_a_byte(weights)
    with Daemon.start(cache, _env()) as d:
        job = _generate(d, 10, seed=1, inference_steps=2)
        end = d.wait_terminal(job["track_id"], timeout=240)
        assert (end["method"], end["code"]) == ("generation_error", "MODEL_LOAD_FAILED")
        assert "LofiSetup ace-step" in end["hint"]
        assert d.call("ping")["result"]["status"] == "ok"


def test_corrupt_converted_weights_are_model_load_failed_and_setup_converts_again(setup_run, tmp_path, hub_files):
    cache = _copy_install(setup_run, tmp_path)
    converted = next(cache.glob("models/models--ACE-Step--Ace-Step1.5/lofi-diffusers/*/acestep-v15-turbo"))
    _flip_a_byte(converted / "transformer" / "diffusion_pytorch_model.safetensors")
    hub = FakeHub([_repo(hub_files)]).start()  # setup asks the hub which commit main is
    with hub, Daemon.start(cache, _env(HF_ENDPOINT=hub.endpoint)) as d:
        job = _generate(d, 10, seed=1, inference_steps=2)
        end = d.wait_terminal(job["track_id"], timeout=240)
        assert (end["method"], end["code"]) == ("generation_error", "MODEL_LOAD_FAILED")
        assert "LofiSetup ace-step-1.5" in end["hint"] and "checksum" in end["message"]
        # Setup does not answer "already installed": it finds every downloaded file intact
        # (nothing is fetched again) and converts again.
        assert d.call("download_backend", backend="ace-step-1.5")["result"]["started"] is True
        d.wait_for("download_complete", timeout=240, backend="ace_step_15")
        assert not [r for r in hub.requests if r.method == "GET" and (r.server == "cdn" or "/resolve/" in r.path)]
        assert "convert" in {r["component"] for r in d.notifications("download_progress")}
        again = _generate(d, 10, seed=1, inference_steps=2)
        assert d.wait_terminal(again["track_id"], timeout=240)["method"] == "generation_complete"


def test_an_unknown_variant_is_invalid_params_for_setup_and_generation(tmp_path):
    cache = tmp_path / "cache"
    (cache / "config").mkdir(parents=True)
    (cache / "config" / "config.json").write_text(json.dumps({"ace_step_15_variant": "turbo-xxl"}))
    with Daemon.start(cache, _env()) as d:
        info = _backend(d)
        assert info["status"] == "not_installed" and "turbo-xxl" in info["description"]
        for reply in (d.call("download_backend", backend="ace-step-1.5"),
                      d.call("generate", prompt=PROMPT, duration_sec=10, backend="ace_step_15")):
            data = reply["error"]["data"]
            assert data["error_code"] == "INVALID_PARAMS" and data["field"] == "ace_step_15_variant"
            assert data["choices"] == ["turbo", "xl-turbo", "xl-base"]
        assert d.call("ping")["result"]["status"] == "ok"


# -- continuing a track (the radio's flow) --------------------------------------------------------

def _finished(d: Daemon, job: dict) -> Path:
    return Path(d.wait_for("generation_complete", timeout=240, track_id=job["track_id"])["path"])


def _library(d: Daemon, tracks_dir: Path) -> tuple[set[str], list[str]]:
    ids = {t["track_id"] for t in d.call("list_tracks")["result"]["tracks"]}
    return ids, sorted(p.name for p in tracks_dir.iterdir())


@pytest.fixture(scope="module")
def source_track(daemon) -> tuple[str, Path]:
    job = _generate(daemon, 10, seed=21, inference_steps=2)
    return job["track_id"], _finished(daemon, job)


def test_a_continuation_begins_with_the_sources_last_seconds_and_says_where_the_new_part_starts(daemon,
                                                                                                source_track):
    source_id, source_path = source_track
    job = _generate(daemon, 12, seed=22, inference_steps=2, continue_from=source_id)
    path = _finished(daemon, job)
    meta = json.loads(path.with_suffix(".json").read_text())
    kept = 6 * 48000 // LATENT_SAMPLES  # half of the 12 s, in whole latents
    assert (meta["continues"], meta["kept_latents"], meta["join_frame"]) == (source_id, kept, kept * LATENT_SAMPLES)
    new, rate = sf.read(str(path), dtype="float32")
    old, _ = sf.read(str(source_path), dtype="float32")
    assert rate == 48000 and new.shape == (300 * LATENT_SAMPLES, 2)
    join = meta["join_frame"]
    assert 0 < join < new.shape[0]
    # The file's head is the source's tail: from after the 5 ms edge fade every track gets
    # (240 frames) to the 0.25 s crossfade before join_frame, the same 16-bit samples again,
    # within one step of 16 bits (libsndfile writes floats x 32767 and reads ints / 32768).
    head, tail = new[240:join - 12000], old[-join:][240:-12000]
    assert np.abs(head - tail).max() <= 1.0 / 32767 + 1e-7
    assert np.abs(head - tail).max() < np.abs(tail).max() / 1000  # far below the music itself


def test_the_same_continuation_again_is_the_same_file(daemon, source_track):
    source_id, _ = source_track
    first = _generate(daemon, 10, seed=23, inference_steps=2, continue_from=source_id)
    digest = hashlib.sha256(_finished(daemon, first).read_bytes()).hexdigest()
    assert "result" in daemon.call("delete_track", track_id=first["track_id"])
    again = _generate(daemon, 10, seed=23, inference_steps=2, continue_from=source_id)
    assert again["status"] != "cached"
    assert hashlib.sha256(_finished(daemon, again).read_bytes()).hexdigest() == digest


@pytest.mark.parametrize("damage", ["garbage", "too_short"])
def test_continuing_a_damaged_or_too_short_file_is_invalid_params_and_writes_nothing(daemon, damage):
    source = _generate(daemon, 10, seed=30 if damage == "garbage" else 31, inference_steps=2)
    path = _finished(daemon, source)
    if damage == "garbage":
        path.write_bytes(b"not audio at all " * 100)
    else:  # a real file of 1.5 s: less than the 2 s a continuation needs
        sf.write(str(path), np.zeros((72000, 2), np.float32), 48000, format=path.suffix[1:].upper(),
                 subtype="PCM_16")
    before = _library(daemon, path.parent)
    job = _generate(daemon, 10, seed=32, inference_steps=2, continue_from=source["track_id"])
    end = daemon.wait_terminal(job["track_id"], timeout=240)
    assert (end["method"], end["code"]) == ("generation_error", "INVALID_PARAMS")
    assert ("too short" if damage == "too_short" else "cannot read the track to continue") in end["message"]
    assert "continue_from" in end["hint"]
    assert _library(daemon, path.parent) == before
    assert daemon.call("ping")["result"]["status"] == "ok"


def test_cancel_during_a_continuation_ends_cancelled_and_leaves_no_file(daemon, source_track):
    source_id, source_path = source_track
    before = _library(daemon, source_path.parent)
    job = _generate(daemon, 120, seed=33, inference_steps=200, continue_from=source_id)
    deadline = time.monotonic() + 240
    while not [p for p in daemon.notifications("generation_progress", track_id=job["track_id"])
               if p["phase"] == "diffusion" and p["current_step"] >= 1]:
        assert time.monotonic() < deadline, "no denoising progress"
        time.sleep(0.02)
    assert daemon.call("cancel", track_id=job["track_id"])["result"]["was_generating"] is True
    end = daemon.wait_terminal(job["track_id"], timeout=120)
    assert end["method"] == "generation_cancelled" and 1 <= end["at_step"] < 200
    assert _library(daemon, source_path.parent) == before
    assert not list(source_path.parent.glob(f"{job['track_id']}*"))
