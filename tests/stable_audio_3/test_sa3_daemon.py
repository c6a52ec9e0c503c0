"""``stable_audio_3`` through a real ``lofi-daemon`` process: setup from the fake hub, then offline use.

The fake hub serves the tiny model (the official-code fixture checkpoint plus a tiny T5Gemma)
as ``stabilityai/stable-audio-3-small-music``. The daemon runs as the plugin runs it (real
pipes, ``HF_HUB_OFFLINE=1`` for loading), sets the backend up with ``download_backend`` and then
generates with the hub stopped. The tiny SAME-S has 64 samples per latent, so a 5 s track is
3,445 latents (plus 6 s of headroom for the DiT).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import pytest

pytest.importorskip("diffusers")
import soundfile as sf  # noqa: E402
from daemon_client import Daemon  # noqa: E402
from fakehub import FakeHub, FakeRepo  # noqa: E402
from tiny_sa3 import folder_files, save_repo  # noqa: E402

from lofi_daemon.models.manifests import STABLE_AUDIO_3_REPO  # noqa: E402

PROMPT = "lofi piano, rain"


def _env(**extra: str) -> dict[str, str]:
    return {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "LOFI_LOG_LEVEL": "INFO", **extra}


def _backend(d: Daemon) -> dict:
    return next(b for b in d.call("get_backends")["result"]["backends"] if b["name"] == "stable_audio_3")


def _generate(d: Daemon, duration: float, **params) -> dict:
    reply = d.call("generate", prompt=PROMPT, duration_sec=duration, backend="sa3", **params)
    assert "result" in reply, reply
    return reply["result"]


@pytest.fixture(scope="module")
def hub_files(tmp_path_factory) -> dict[str, bytes]:
    return folder_files(save_repo(tmp_path_factory.mktemp("sa3-repo") / "repo"))


@pytest.fixture(scope="module")
def setup_run(tmp_path_factory, hub_files):
    root = tmp_path_factory.mktemp("sa3-daemon")
    hub = FakeHub([FakeRepo(STABLE_AUDIO_3_REPO, {**hub_files, "README.md": b"# gated"})]).start()
    with Daemon.start(root / "cache", _env(HF_ENDPOINT=hub.endpoint)) as d:
        before = _backend(d)
        started = d.call("download_backend", backend="stable-audio-3")
        done = d.wait_for("download_complete", timeout=240, backend="stable_audio_3")
        hub.stop()  # from here on loading must be offline
        yield {"daemon": d, "before": before, "started": started, "done": done, "root": root}


@pytest.fixture(scope="module")
def daemon(setup_run) -> Daemon:
    return setup_run["daemon"]


def test_setup_downloads_the_checkpoint_and_the_text_encoder_with_per_file_progress(setup_run, hub_files):
    d = setup_run["daemon"]
    assert setup_run["before"]["status"] == "not_installed"
    assert setup_run["started"]["result"] == {"started": True, "already_installed": False}
    reports = d.notifications("download_progress", backend="stable_audio_3")
    assert list(dict.fromkeys(r["component"] for r in reports)) == ["model", "text_encoder"]
    assert [r["overall_percent"] for r in reports] == sorted(r["overall_percent"] for r in reports)
    expected = sum(len(v) for v in hub_files.values())  # everything but the README
    assert reports[-1]["overall_percent"] == 100.0 and reports[-1]["bytes_total"] == expected
    assert _backend(d)["status"] == "installed"


def test_get_backends_lists_the_parameters_their_ranges_and_the_licence(daemon):
    info = _backend(daemon)
    params = {p["name"]: p for p in info["parameters"]}
    steps = params["inference_steps"]
    assert (steps["default"], steps["minimum"], steps["maximum"]) == (8, 1, 16)
    assert params["instrumental"]["default"] is True and "A minor" in params["key"]["choices"]
    assert params["bpm"]["maximum"] == 250
    assert (info["min_duration_sec"], info["max_duration_sec"]) == (5.0, 120.0)
    assert "Stability AI Community License" in info["description"] and "Gemma" in info["description"]
    assert "Stability AI Community License" in info["licence"] and "Gemma" in info["licence"]
    # a backend with no terms to accept says nothing
    assert next(b for b in daemon.call("get_backends")["result"]["backends"] if b["name"] == "procedural")["licence"] == ""


def test_a_5_s_track_is_a_48k_stereo_file_with_progress_monotone_through_diffusion_and_decode(daemon):
    job = _generate(daemon, 5, seed=1, inference_steps=4, bpm=90, key="A minor")
    done = daemon.wait_for("generation_complete", timeout=240, track_id=job["track_id"])
    info = sf.info(done["path"])
    assert (info.samplerate, info.channels, info.frames) == (48000, 2, 240000)
    progress = daemon.notifications("generation_progress", track_id=job["track_id"])
    percents = [p["percent"] for p in progress]
    assert percents == sorted(percents) and percents[-1] == 100.0
    phases = [p["phase"] for p in progress]
    assert phases.index("diffusion") < phases.index("decode")
    assert {p["total_steps"] for p in progress if p["phase"] == "diffusion"} == {4}
    meta = json.loads(Path(done["path"]).with_suffix(".json").read_text())
    assert meta["backend"] == "stable_audio_3"
    assert meta["prompt_sent"] == "TrackType: Music, VocalType: Instrumental. lofi piano, rain, 90 BPM, in A minor"


def test_the_same_seed_regenerated_gives_an_identical_file(daemon):
    first = _generate(daemon, 5, seed=77, inference_steps=2)
    path = daemon.wait_for("generation_complete", timeout=240, track_id=first["track_id"])["path"]
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    assert "result" in daemon.call("delete_track", track_id=first["track_id"])
    again = _generate(daemon, 5, seed=77, inference_steps=2)
    path = daemon.wait_for("generation_complete", timeout=240, track_id=again["track_id"])["path"]
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == digest


def test_cancel_during_diffusion_ends_cancelled_within_a_step_without_decoding(daemon):
    job = _generate(daemon, 10, seed=5, inference_steps=16)
    deadline = time.monotonic() + 240
    while not [p for p in daemon.notifications("generation_progress", track_id=job["track_id"])
               if p["phase"] == "diffusion" and p["current_step"] >= 1]:
        assert time.monotonic() < deadline, "no diffusion progress"
        time.sleep(0.02)
    assert daemon.call("cancel", track_id=job["track_id"])["result"]["was_generating"] is True
    end = daemon.wait_terminal(job["track_id"], timeout=120)
    assert end["method"] == "generation_cancelled"
    steps_seen = max(p["current_step"] for p in daemon.notifications("generation_progress", track_id=job["track_id"])
                     if p["phase"] == "diffusion")
    assert 1 <= end["at_step"] <= steps_seen + 1 < 16
    assert not [p for p in daemon.notifications("generation_progress", track_id=job["track_id"])
                if p["phase"] == "decode"]


def test_corrupt_weights_are_model_load_failed_with_the_setup_hint(setup_run, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(setup_run["root"] / "cache" / "models", cache / "models")
    weights = next(cache.glob("models/models--stabilityai--stable-audio-3-small-music/snapshots/*/model.safetensors"))
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with Daemon.start(cache, _env()) as d:
        job = _generate(d, 5, seed=1, inference_steps=1)
        end = d.wait_terminal(job["track_id"], timeout=240)
        assert (end["method"], end["code"]) == ("generation_error", "MODEL_LOAD_FAILED")
        assert "LofiSetup stable-audio-3" in end["hint"]
        assert d.call("ping")["result"]["status"] == "ok"


@pytest.mark.parametrize("status", [401, 403])
def test_a_gated_answer_says_where_to_accept_the_licence_and_how_to_log_in_and_leaves_nothing(
        tmp_path, hub_files, status):
    hub = FakeHub([FakeRepo(STABLE_AUDIO_3_REPO, hub_files)]).start()
    hub.fail(status=status, times=10_000)  # what the hub answers before the licence is accepted
    try:
        with Daemon.start(tmp_path / "cache", _env(HF_ENDPOINT=hub.endpoint)) as d:
            d.call("download_backend", backend="sa3")
            error = d.wait_for("download_error", timeout=120, backend="stable_audio_3")
            assert error["code"] == "DOWNLOAD_FAILED" and f"HTTP {status}" in error["message"]
            assert f"https://huggingface.co/{STABLE_AUDIO_3_REPO}" in error["hint"]
            assert "accept its licence" in error["hint"] and "hf auth login" in error["hint"]
            assert _backend(d)["status"] == "not_installed"
    finally:
        hub.stop()
    repo_dir = tmp_path / "cache" / "models" / "models--stabilityai--stable-audio-3-small-music"
    assert not [p for p in repo_dir.rglob("*") if p.is_file() and "snapshots" in p.parts]


def test_continue_from_a_track_starts_from_its_tail_and_an_unknown_id_is_refused(daemon):
    first = _generate(daemon, 5, seed=11, inference_steps=2)
    daemon.wait_for("generation_complete", timeout=240, track_id=first["track_id"])
    plain = _generate(daemon, 6, seed=12, inference_steps=2)
    plain_path = daemon.wait_for("generation_complete", timeout=240, track_id=plain["track_id"])["path"]
    cont = _generate(daemon, 6, seed=12, inference_steps=2, continue_from=first["track_id"])
    done = daemon.wait_for("generation_complete", timeout=240, track_id=cont["track_id"])
    meta = json.loads(Path(done["path"]).with_suffix(".json").read_text())
    # 3 s kept: the largest whole number of 2-latent blocks (128 samples each) in 3 s at 44.1 kHz.
    assert meta["kept_latents"] == (3 * 44100 // 128) * 2
    # The radio's flow joins where the new part begins: the kept samples, at the file's 48 kHz.
    assert meta["continues"] == first["track_id"]
    assert meta["join_frame"] == round(meta["kept_latents"] * 64 * 48000 / 44100)
    assert 0 < meta["lead_in_frames"] <= meta["join_frame"]  # flow moves into the reconstructed head
    assert Path(done["path"]).read_bytes() != Path(plain_path).read_bytes()  # the kept tail shaped it
    reply = daemon.call("generate", prompt=PROMPT, duration_sec=6, backend="sa3", continue_from="nope")
    assert reply["error"]["data"]["error_code"] == "TRACK_NOT_FOUND"


KNEE = 10 ** (-1 / 20)  # the mixer's safety limiter leaves samples below -1 dBFS untouched


def _tracks_heard(d: Daemon, first: str) -> list[str]:
    """The radio's tracks in the order the worker played them, from ``first`` on (the bridge before it)."""
    ids: list[str] = []
    for state in d.notifications("playback_state"):
        tid = state["track_id"]
        if tid and (not ids or ids[-1] != tid) and (ids or tid == first):
            ids.append(tid)
    return ids


def test_the_radio_flows_each_track_into_the_next_moving_into_its_reconstructed_head(setup_run, tmp_path):
    import numpy as np

    cache, cap = tmp_path / "cache", tmp_path / "radio.f32"
    shutil.copytree(setup_run["root"] / "cache" / "models", cache / "models")
    env = _env(LOFI_PLAYBACK="local", LOFI_PLAYER_SINK=f"capture {cap} 4")  # 4x real time
    with Daemon.start(cache, env) as d:
        reply = d.call("radio_start", prompt=PROMPT, backend="sa3", duration_sec=6,
                       params={"inference_steps": 2}, bridge="procedural", timeout=60)["result"]
        assert reply["mode"] == "flow"  # chosen by itself: the backend continues audio
        first_ai = reply["first_track_id"]
        deadline = time.monotonic() + 240
        while len(_tracks_heard(d, first_ai)) < 3:
            assert time.monotonic() < deadline, "three Stable Audio 3 tracks were not played"
            time.sleep(0.2)
        d.call("radio_stop")
        tracks = {t["track_id"]: t for t in d.call("list_tracks")["result"]["tracks"]}
    first, second = _tracks_heard(d, first_ai)[:2]
    meta = json.loads(Path(tracks[second]["path"]).with_suffix(".json").read_text())
    assert meta["continues"] == first
    join, lead = meta["join_frame"], meta["lead_in_frames"]
    assert lead == 12_000 < join
    out = np.fromfile(cap, dtype="<f4")
    out = out[:out.size - out.size % 2].reshape(-1, 2)
    a = sf.read(tracks[first]["path"], dtype="float32", always_2d=True)[0]
    b = sf.read(tracks[second]["path"], dtype="float32", always_2d=True)[0]
    # Where the second track's new part was heard: its samples from join_frame, exactly ...
    quiet_b = np.all(np.abs(b[join:join + 2000]) < KNEE, axis=1)
    first_quiet = int(np.flatnonzero(quiet_b)[0])
    hits = [c - first_quiet for c in np.flatnonzero(np.all(out == b[join + first_quiet], axis=1))
            if c >= first_quiet and np.array_equal(out[c - first_quiet:c - first_quiet + 2000][quiet_b],
                                                   b[join:join + 2000][quiet_b])]
    assert hits, "the second track's new part was not heard as it is in its file"
    i = hits[0]
    # ... before it the first track's own end, up to the lead-in ...
    quiet_a = np.all(np.abs(a[-lead - 2000:-lead]) < KNEE, axis=1)
    np.testing.assert_array_equal(out[i - lead - 2000:i - lead][quiet_a], a[-lead - 2000:-lead][quiet_a])
    # ... and over the lead-in the move from that end (faded to zero by the writer) into the
    # second's head, SAME-S's reconstruction of it, which the new part goes on from.
    w = ((np.arange(lead) + 1.0) / lead).astype(np.float32)[:, None]
    moved = a[-lead:] + w * (b[join - lead:join] - a[-lead:])
    quiet = np.all(np.abs(moved) < KNEE, axis=1)
    np.testing.assert_allclose(out[i - lead:i][quiet], moved[quiet], atol=1e-6)
    assert np.abs(a[-1]).max() < 1e-3 < np.abs(b[join - 1]).max()  # a splice would have stepped here


def test_lofi_setup_says_the_licence_before_the_download_starts(tmp_path, hub_files):
    import os
    import subprocess
    import sys

    hub = FakeHub([FakeRepo(STABLE_AUDIO_3_REPO, hub_files)]).start()
    hub.fail(status=403, times=10_000)  # the terms not yet accepted: nothing is fetched
    try:
        env = {**os.environ, "LOFI_CACHE_DIR": str(tmp_path / "cache"), "LOFI_CONFIG_DIR": str(tmp_path / "config"),
               "HF_ENDPOINT": hub.endpoint, "HF_HUB_OFFLINE": "0"}
        run = subprocess.run([sys.executable, "-m", "lofi_daemon.cli", "--in-process", "setup", "stable-audio-3"],
                             capture_output=True, text=True, env=env, timeout=240)
    finally:
        hub.stop()
    assert run.returncode != 0
    lines = run.stderr.splitlines()
    licence = next(i for i, line in enumerate(lines) if line.startswith("stable_audio_3 licence: "))
    assert "Stability AI Community License" in lines[licence] and "Gemma" in lines[licence]
    refusal = next(i for i, line in enumerate(lines) if "403" in line)
    assert licence < refusal  # said first, then the hub's refusal with where to accept it
