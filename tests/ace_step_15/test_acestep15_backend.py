"""The ``ace_step_15`` backend object on the tiny model: output, progress, cancel without decode, faults."""

from __future__ import annotations

import math

import pytest
import torch
from acestep15_helpers import Recorder, make_backend

from lofi_daemon.cancel import CancelToken
from lofi_daemon.backends.base import GenerationRequest
from lofi_daemon.device import DevicePlan
from lofi_daemon.errors import InvalidParams, JobCancelled, ModelInferenceFailed, ModelLoadFailed

PROMPT = "lo-fi hip hop, mellow piano, vinyl crackle"
CPU = DevicePlan(preference="cpu")


@pytest.fixture(scope="module")
def backend(installed_cache):
    b = make_backend(installed_cache)
    b.load(CPU)
    yield b
    b.unload()


@pytest.fixture
def decoder_calls(backend):
    """How often the VAE decoder really runs (a forward hook counts the calls)."""
    calls = []
    handle = backend._pipe.vae.decoder.register_forward_hook(lambda *_: calls.append(1))
    yield calls
    handle.remove()


def _request(duration=10.0, seed=5, **params):
    return GenerationRequest(prompt=PROMPT, duration_sec=duration, seed=seed, params=params)


def test_a_generation_is_48k_stereo_of_the_requested_length_with_every_phase_reported(backend, decoder_calls):
    progress = Recorder()
    audio = backend.generate(_request(duration=10.0, inference_steps=8), progress, CancelToken())
    assert audio.sample_rate == 48000 and audio.samples.shape == (2, 250 * 1920)  # ceil(10 * 25) latents
    assert str(audio.samples.dtype) == "float32"
    assert abs(audio.samples).max() == pytest.approx(10 ** (-1 / 20), rel=1e-5)
    assert progress.phases == ["text", "diffusion", "decode"]
    assert [u for u in progress.updates if u[0] == "diffusion"] == [("diffusion", i, 8) for i in range(0, 9)]
    assert progress.updates.index(("text", 1, 1)) < progress.updates.index(("diffusion", 0, 8))
    assert progress.updates[-1] == ("decode", 1, 1) and len(decoder_calls) == 1
    meta = audio.metadata
    assert (meta["device"], meta["dtype"], meta["variant"], meta["latent_length"]) == ("cpu", "float32", "turbo", 250)
    assert meta["model_version"].startswith("ACE-Step/Ace-Step1.5@") and meta["model_version"].endswith(":turbo")


def test_a_long_track_decodes_in_tiles_each_reported(backend, decoder_calls):
    from lofi_daemon.backends.ace_step_15.decode import TilePlan

    backend.tiles = TilePlan(core=100, overlap=16, untiled_up_to=100)
    try:
        progress = Recorder()
        audio = backend.generate(_request(duration=12.0, inference_steps=2), progress, CancelToken())
    finally:
        backend.tiles = TilePlan()
    assert audio.samples.shape == (2, 300 * 1920)
    assert [u for u in progress.updates if u[0] == "decode" and u[1] > 0] == [("decode", i, 3) for i in (1, 2, 3)]
    assert len(decoder_calls) == 3


def test_a_cancel_during_denoising_stops_within_the_step_and_never_decodes(backend, decoder_calls):
    token = CancelToken()

    def cancel_at_step_3(phase, current, total):
        if phase == "diffusion" and current == 3:
            token.cancel()

    progress = Recorder(cancel_at_step_3)
    with pytest.raises(JobCancelled) as err:
        backend.generate(_request(inference_steps=20), progress, token)
    assert (err.value.at_step, err.value.total_steps) == (3, 20)
    assert max(c for p, c, _ in progress.updates if p == "diffusion") == 3
    assert decoder_calls == []  # diffusers' own interrupt would have decoded the partial latents here
    assert not any(p == "decode" for p, _, _ in progress.updates)


def test_the_same_seed_gives_the_same_samples_and_another_seed_does_not(backend):
    a = backend.generate(_request(seed=9, inference_steps=3), Recorder(), CancelToken()).samples
    b = backend.generate(_request(seed=9, inference_steps=3), Recorder(), CancelToken()).samples
    c = backend.generate(_request(seed=10, inference_steps=3), Recorder(), CancelToken()).samples
    assert (a == b).all() and not (a == c).all()


def test_the_parameters_reach_the_pipeline(backend):
    plain = backend.generate(_request(seed=4, inference_steps=3), Recorder(), CancelToken()).samples
    tagged = backend.generate(_request(seed=4, inference_steps=3, bpm=90, keyscale="D minor", timesignature="3"),
                              Recorder(), CancelToken()).samples
    shifted = backend.generate(_request(seed=4, inference_steps=3, shift=1.0), Recorder(), CancelToken()).samples
    assert not (plain == tagged).all() and not (plain == shifted).all()


def test_bad_parameter_values_are_invalid_params(backend):
    with pytest.raises(InvalidParams) as err:
        backend.generate(_request(bpm=12), Recorder(), CancelToken())
    assert err.value.facts["field"] == "bpm"
    with pytest.raises(InvalidParams):
        backend.generate(_request(keyscale="H major"), Recorder(), CancelToken())


def test_nan_in_the_denoising_is_model_inference_failed_naming_the_step(installed_cache):
    b = make_backend(installed_cache)
    b.load(CPU)
    with torch.no_grad():
        b._pipe.transformer.proj_out_conv.weight.fill_(math.nan)  # a broken weight, as bad bf16 math would give
    with pytest.raises(ModelInferenceFailed) as err:
        b.generate(_request(inference_steps=4), Recorder(), CancelToken())
    assert err.value.facts["at_step"] == 1 and "NaN" in err.value.message
    b.unload()


def test_not_enough_memory_fails_the_load_with_both_numbers(installed_cache, monkeypatch):
    import lofi_daemon.device as device

    b = make_backend(installed_cache)
    monkeypatch.setattr(device, "available_ram_bytes", lambda: 1 << 20)
    with pytest.raises(ModelLoadFailed) as err:
        b.load(CPU)
    assert err.value.facts["available_bytes"] == 1 << 20
    assert err.value.facts["required_bytes"] > 2 << 30  # weights + a long track's working memory
    assert not b.loaded


def test_an_unknown_variant_is_listed_but_refused_with_the_choices(installed_cache):
    b = make_backend(installed_cache, ace_step_15_variant="turbo-xxl")
    assert not b.is_installed() and b.size_bytes() == 0
    assert "turbo-xxl" in b.capabilities().description
    for attempt in (lambda: b.manifest, lambda: b.capabilities().resolve_params({}), lambda: b.load(CPU)):
        with pytest.raises(InvalidParams) as err:
            attempt()
        assert err.value.facts["choices"] == ["turbo", "xl-turbo", "xl-base"]


def test_a_download_without_its_conversion_is_not_installed_and_loading_says_run_setup(installed_cache, tmp_path):
    import shutil

    cache = tmp_path / "cache"
    shutil.copytree(installed_cache / "models", cache / "models")
    for converted in (cache / "models").glob("*/lofi-diffusers"):
        shutil.rmtree(converted)
    b = make_backend(cache)
    assert not b.is_installed()  # so :LofiSetup converts instead of answering "already installed"
    with pytest.raises(ModelLoadFailed) as err:
        b.load(CPU)
    assert "no finished conversion" in err.value.message and "LofiSetup ace-step-1.5" in err.value.hint
    b.finish_setup()
    assert b.is_installed()
    b.load(CPU)
    audio = b.generate(_request(duration=10.0, inference_steps=2), Recorder(), CancelToken())
    assert audio.samples.shape == (2, 250 * 1920)
    b.unload()
