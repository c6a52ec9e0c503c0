"""The ``ace_step`` backend through a real ``lofi-daemon`` process, on the tiny checkpoint.

``LOFI_ACESTEP_DIR`` points the backend at the golden-fixture checkpoint (the official
folder layout with random weights), so the whole path runs: JSON-RPC -> job -> backend
load -> pipeline -> decode -> 48 kHz file.
"""

from __future__ import annotations

import hashlib
import math
import shutil
import time
from pathlib import Path

import pytest
import soundfile as sf

from daemon_client import Daemon

PROMPT = "lo-fi hip hop, mellow piano, vinyl crackle, 80 bpm, relaxed"
# 5 s -> int(5 * 44100 / 4096) = 53 latent frames -> 53 * 4096 samples at 44.1 kHz -> 48 kHz
FRAMES_48K_FOR_5_SEC = math.ceil(53 * 4096 * 48000 / 44100)


def _start(tmp: Path, checkpoint: Path) -> Daemon:
    # One torch thread: CI shares its 2 cores between test processes, and OpenMP threads
    # waiting for a busy core make the tiny model 10-30x slower (ACESTEP_V1.md section 6).
    env = {"LOFI_ACESTEP_DIR": str(checkpoint), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return Daemon.start(tmp / "cache", env)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, acestep_checkpoint):
    with _start(tmp_path_factory.mktemp("ace_daemon"), acestep_checkpoint) as d:
        yield d


def _generate(daemon: Daemon, **params) -> dict:
    reply = daemon.call("generate", prompt=PROMPT, duration_sec=5, backend="ace-step", **params)
    assert "result" in reply, reply
    return reply["result"]


def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_backend_is_listed_installed_with_every_parameter(daemon):
    backends = {b["name"]: b for b in daemon.call("get_backends")["result"]["backends"]}
    ace = backends["ace_step"]
    assert ace["status"] == "installed"
    assert (ace["min_duration_sec"], ace["max_duration_sec"], ace["sample_rate"]) == (5.0, 240.0, 48000)
    params = {p["name"]: p for p in ace["parameters"]}
    assert params["inference_steps"]["default"] == 27
    assert (params["inference_steps"]["minimum"], params["inference_steps"]["maximum"]) == (1, 200)
    assert params["scheduler"]["choices"] == ["euler", "heun", "pingpong"]
    assert params["instrumental_tag"]["choices"] == ["[instrumental]", "[inst]", ""]
    assert params["guidance_scale"]["default"] == 15.0
    assert {"cfg_type", "omega_scale", "guidance_interval", "guidance_interval_decay", "min_guidance_scale",
            "use_erg_tag", "use_erg_lyric", "use_erg_diffusion"} <= set(params)


def test_generate_writes_a_48k_stereo_file_of_the_floored_length_with_phase_progress(daemon):
    job = _generate(daemon, seed=1234, inference_steps=8)
    assert job["backend"] == "ace_step"
    done = daemon.wait_for("generation_complete", timeout=240, track_id=job["track_id"])
    info = sf.info(done["path"])
    assert (info.samplerate, info.channels, info.frames) == (48000, 2, FRAMES_48K_FOR_5_SEC)
    assert done["duration_sec"] == pytest.approx(FRAMES_48K_FOR_5_SEC / 48000, abs=1e-3)
    assert 5.0 - done["duration_sec"] < 0.1  # floors by less than one latent frame (93 ms)

    progress = daemon.notifications("generation_progress", track_id=job["track_id"])
    percents = [p["percent"] for p in progress]
    assert percents == sorted(percents) and percents[-1] == 100.0
    phases = [p["phase"] for p in progress]
    assert phases.index("text") < phases.index("diffusion") < phases.index("decode")
    diffusion = [p for p in progress if p["phase"] == "diffusion"]
    assert {p["total_steps"] for p in diffusion} == {8}
    assert max(p["current_step"] for p in diffusion) == 8


def test_same_seed_regenerated_gives_an_identical_file(daemon):
    first = _generate(daemon, seed=77, inference_steps=4, scheduler="pingpong")
    path = daemon.wait_for("generation_complete", timeout=240, track_id=first["track_id"])["path"]
    digest = _sha256(path)
    assert "result" in daemon.call("delete_track", track_id=first["track_id"])
    again = _generate(daemon, seed=77, inference_steps=4, scheduler="pingpong")
    assert again["status"] != "cached"
    path = daemon.wait_for("generation_complete", timeout=240, track_id=again["track_id"])["path"]
    assert _sha256(path) == digest


def _first_diffusion_progress(daemon: Daemon, track_id: str, timeout: float) -> dict:
    # Progress is throttled by the job layer, so wait for any denoising report, not a given step.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = [p for p in daemon.notifications("generation_progress", track_id=track_id)
                if p["phase"] == "diffusion" and p["current_step"] >= 1]
        if seen:
            return seen[0]
        time.sleep(0.02)
    raise TimeoutError(f"no denoising progress for {track_id} within {timeout} s")


def test_cancel_during_denoising_stops_it_and_the_next_job_runs(daemon):
    long_job = _generate(daemon, seed=5, inference_steps=200)
    waiting = _generate(daemon, seed=6, inference_steps=2)
    seen = _first_diffusion_progress(daemon, long_job["track_id"], timeout=240)
    assert seen["total_steps"] == 200
    assert daemon.call("cancel", track_id=long_job["track_id"])["result"]["was_generating"] is True
    end = daemon.wait_terminal(long_job["track_id"], timeout=240)
    assert end["method"] == "generation_cancelled"
    # It stopped between steps, before its end (no wall-clock bound: the machine may be busy;
    # the exact "stops before the next call" is tested on the pipeline itself).
    assert seen["current_step"] <= end["at_step"] < 200 and end["total_steps"] == 200
    assert daemon.wait_terminal(waiting["track_id"], timeout=240)["method"] == "generation_complete"


def test_out_of_range_parameter_is_rejected_before_queueing(daemon):
    reply = daemon.call("generate", prompt=PROMPT, duration_sec=5, backend="ace_step", inference_steps=500)
    assert reply["error"]["data"]["error_code"] == "INVALID_PARAMS"
    assert reply["error"]["data"]["field"] == "inference_steps"


def test_corrupt_weights_are_model_load_failed_and_the_daemon_lives_on(tmp_path, acestep_fixture):
    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(acestep_fixture / "checkpoint", checkpoint)
    weights = checkpoint / "ace_step_transformer" / "diffusion_pytorch_model.safetensors"
    weights.chmod(0o644)
    weights.write_bytes(weights.read_bytes()[:100_000])
    with _start(tmp_path, checkpoint) as daemon:
        job = _generate(daemon, seed=1, inference_steps=2)
        end = daemon.wait_terminal(job["track_id"], timeout=240)
        assert end["method"] == "generation_error"
        assert end["code"] == "MODEL_LOAD_FAILED"
        assert "LofiSetup ace-step" in end["hint"]
        assert daemon.call("ping")["result"]["status"] == "ok"


# -- the backend object itself, for what the daemon only shows as a code ------------------


def _backend(tmp_path, monkeypatch, checkpoint: Path):
    from lofi_daemon.backends.ace_step.backend import AceStepBackend
    from lofi_daemon.models.store import ModelStore
    from lofi_daemon.settings import Settings

    monkeypatch.setenv("LOFI_ACESTEP_DIR", str(checkpoint))
    settings = Settings(cache_dir=tmp_path / "cache", config_dir=tmp_path / "config")
    return AceStepBackend(settings, ModelStore(settings.models_dir))


def test_not_enough_memory_fails_the_load_with_both_numbers(tmp_path, monkeypatch, acestep_checkpoint):
    import lofi_daemon.device as device
    from lofi_daemon.device import DevicePlan
    from lofi_daemon.errors import ModelLoadFailed

    backend = _backend(tmp_path, monkeypatch, acestep_checkpoint)
    monkeypatch.setattr(device, "available_ram_bytes", lambda: 1 << 20)  # this machine "has" 1 MiB free
    with pytest.raises(ModelLoadFailed) as err:
        backend.load(DevicePlan(preference="cpu"))
    assert err.value.facts["available_bytes"] == 1 << 20
    assert err.value.facts["required_bytes"] > 1 << 30  # weights + working memory
    assert not backend.loaded


def test_folder_without_the_official_layout_is_not_installed_and_fails_to_load(tmp_path, monkeypatch,
                                                                                 acestep_checkpoint):
    from lofi_daemon.device import DevicePlan
    from lofi_daemon.errors import ModelLoadFailed

    partial = tmp_path / "partial"
    shutil.copytree(acestep_checkpoint / "ace_step_transformer", partial / "ace_step_transformer")
    backend = _backend(tmp_path, monkeypatch, partial)
    assert not backend.is_installed()
    with pytest.raises(ModelLoadFailed) as err:
        backend.load(DevicePlan(preference="cpu"))
    assert "umt5-base" in err.value.message


def test_generated_audio_is_48k_stereo_with_its_true_duration_and_device(tmp_path, monkeypatch, acestep_checkpoint):
    from lofi_daemon.cancel import CancelToken
    from lofi_daemon.backends.base import GenerationRequest
    from lofi_daemon.device import DevicePlan

    class Plan:
        def plan(self, phases):
            self.phases = [name for name, _ in phases]

        def update(self, phase, current, total):
            pass

    backend = _backend(tmp_path, monkeypatch, acestep_checkpoint)
    backend.load(DevicePlan(preference="cpu"))
    progress = Plan()
    request = GenerationRequest(prompt=PROMPT, duration_sec=5.0, seed=3, params={"inference_steps": 2})
    audio = backend.generate(request, progress, CancelToken())
    assert progress.phases == ["text", "diffusion", "decode"]
    assert audio.sample_rate == 48000 and audio.samples.shape == (2, FRAMES_48K_FOR_5_SEC)
    assert str(audio.samples.dtype) == "float32"
    meta = audio.metadata
    assert meta["true_duration_sec"] == pytest.approx(FRAMES_48K_FOR_5_SEC / 48000)
    assert (meta["device"], meta["dtype"], meta["frame_length"]) == ("cpu", "float32", 53)
    assert meta["threads"] >= 1 and meta["transformer_calls"] == 2
    backend.unload()
    assert not backend.loaded


def test_an_official_app_hub_cache_can_be_reused_as_it_is(tmp_path, monkeypatch, acestep_checkpoint):
    cache = tmp_path / "ace-step-checkpoints"  # what the official app keeps in ~/.cache/ace-step/checkpoints
    snapshot = cache / "models--ACE-Step--ACE-Step-v1-3.5B" / "snapshots" / "82cd0d7b6322bd28cd4e830fe675ddb6180ce36c"
    snapshot.mkdir(parents=True)
    for sub in ("ace_step_transformer", "music_dcae_f8c8", "music_vocoder", "umt5-base"):
        (snapshot / sub).symlink_to(acestep_checkpoint / sub, target_is_directory=True)
    backend = _backend(tmp_path, monkeypatch, cache)
    assert backend.is_installed()
    assert backend.checkpoint_dir == snapshot
