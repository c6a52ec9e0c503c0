"""Installing and loading MusicGen: offline, verified, memory-checked, unloadable."""

from __future__ import annotations

import gc
import json
import logging
import shutil
import socket
import struct
import weakref

import numpy as np
import pytest
import torch

from musicgen_helpers import STEREO_MODEL, RecordingProgress, make_backend
from lofi_daemon.cancel import CancelToken
from lofi_daemon.backends.base import GenerationRequest
from lofi_daemon.errors import BackendNotInstalled, ErrorCode, ModelInferenceFailed, ModelLoadFailed


def generate(backend, seconds=5.0, seed=3):
    req = GenerationRequest("lofi rain", seconds, seed, backend.capabilities().resolve_params({}))
    return backend.generate(req, RecordingProgress(), CancelToken())


def test_capabilities_offer_5_to_30_seconds_at_32khz_with_validated_parameters(tmp_path):
    caps = make_backend(tmp_path, None).capabilities()
    assert (caps.min_duration_sec, caps.max_duration_sec, caps.sample_rate) == (5.0, 30.0, 32_000)
    assert caps.resolve_params({}) == {"guidance_scale": 3.0, "temperature": 1.0, "top_k": 250, "top_p": 0.0}
    for bad in ({"top_k": 5000}, {"temperature": 0}, {"guidance_scale": 50}, {"top_p": 1.5}, {"steps": 3}):
        with pytest.raises(Exception) as err:
            caps.resolve_params(bad)
        assert err.value.code == ErrorCode.INVALID_PARAMS and next(iter(bad)) in str(err.value)


def test_not_installed_until_setup_has_put_the_files_in_place(tmp_path, tiny_checkpoint):
    empty = make_backend(tmp_path / "empty", None)
    assert not empty.is_installed()
    with pytest.raises(BackendNotInstalled) as err:
        empty.load(empty._settings.device_plan)
    assert ":LofiSetup musicgen" in err.value.hint
    installed = make_backend(tmp_path / "full", tiny_checkpoint)
    assert installed.is_installed()
    assert installed.size_bytes() == sum(p.stat().st_size for p in tiny_checkpoint.iterdir())


def test_loading_never_opens_a_network_connection(tmp_path, tiny_checkpoint, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # offline must not depend on the env

    def no_network(*args, **kwargs):
        raise AssertionError(f"network access during load: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    backend = make_backend(tmp_path, tiny_checkpoint)
    backend.load(backend._settings.device_plan)
    assert generate(backend).samples.shape == (2, 160_000)


def test_corrupt_weights_fail_to_load_with_the_setup_hint(tmp_path, tiny_checkpoint):
    backend = make_backend(tmp_path, tiny_checkpoint)
    backend.load(backend._settings.device_plan)  # a good install loads ...
    backend.unload()
    weights = backend.snapshot_dir / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = b"\xff" * 64  # ... then bit rot, same size
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelLoadFailed) as err:
        backend.load(backend._settings.device_plan)
    assert err.value.code == ErrorCode.MODEL_LOAD_FAILED
    assert ":LofiSetup musicgen" in err.value.hint
    assert "model.safetensors" in err.value.message
    assert not backend.loaded


def test_truncated_weights_fail_to_load_with_the_setup_hint(tmp_path, tiny_checkpoint):
    backend = make_backend(tmp_path, tiny_checkpoint)
    weights = backend.snapshot_dir / "model.safetensors"
    with weights.open("r+b") as f:
        f.truncate(weights.stat().st_size // 3)
    with pytest.raises(ModelLoadFailed) as err:
        backend.load(backend._settings.device_plan)
    assert ":LofiSetup musicgen" in err.value.hint


def test_a_model_larger_than_memory_is_refused_with_required_and_available_bytes(tmp_path, tiny_checkpoint):
    backend = make_backend(tmp_path, tiny_checkpoint)
    # A well-formed checkpoint that declares 2^38 float32 parameters (1 TiB): written as a
    # sparse file, so it costs no disk, and recorded by size like a file without checksum.
    weights = backend.snapshot_dir / "model.safetensors"
    header = json.dumps({"decoder.huge": {"dtype": "F32", "shape": [1 << 20, 1 << 18],
                                          "data_offsets": [0, 4 << 38]}}).encode()
    with weights.open("wb") as f:
        f.write(struct.pack("<Q", len(header)) + header)
        f.truncate(8 + len(header) + (4 << 38))
    store = backend._store
    record = store.read_record(backend.manifest)
    entry = record.file("model.safetensors")
    entry.size, entry.sha256 = weights.stat().st_size, None
    record.save(store.record_path(backend.manifest))

    with pytest.raises(ModelLoadFailed) as err:
        backend.load(backend._settings.device_plan)
    facts = err.value.data
    assert facts["required_bytes"] > 4 << 38 > facts["available_bytes"] > 0
    assert not backend.loaded


def test_nan_weights_fail_at_the_first_token_with_retry_hint(tmp_path, tiny_checkpoint):
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken-checkpoint"
    shutil.copytree(tiny_checkpoint, broken)
    tensors = load_file(broken / "model.safetensors")
    tensors["decoder.lm_heads.0.weight"].fill_(float("nan"))
    save_file(tensors, broken / "model.safetensors", metadata={"format": "pt"})
    backend = make_backend(tmp_path / "cache", broken)
    backend.load(backend._settings.device_plan)
    with pytest.raises(ModelInferenceFailed) as err:
        generate(backend)
    assert err.value.hint == "Retry with another seed."
    assert err.value.data["at_step"] == 1


def test_stereo_checkpoints_keep_two_different_channels(tmp_path, tiny_stereo_checkpoint):
    backend = make_backend(tmp_path, tiny_stereo_checkpoint, model=STEREO_MODEL)
    backend.load(backend._settings.device_plan)
    audio = generate(backend, seconds=5.5)
    assert audio.samples.shape == (2, 176_000)
    assert audio.metadata["model_channels"] == 2 and audio.metadata["tokens"] == 278
    assert not np.array_equal(audio.samples[0], audio.samples[1])
    # An unpinned revision ("main") is reported as the commit setup resolved it to.
    assert backend.model_version == f"{STEREO_MODEL}@{backend._store.commit(backend.manifest)}"
    assert len(backend.model_version.split("@")[1]) == 40


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_runs_the_language_model_in_half_and_the_codec_in_float32(tmp_path, tiny_checkpoint, dtype):
    backend = make_backend(tmp_path, tiny_checkpoint, dtype=dtype)
    backend.load(backend._settings.device_plan)
    model = backend._session.model
    assert model.decoder.dtype == getattr(torch, dtype)
    assert next(model.audio_encoder.parameters()).dtype == torch.float32
    audio = generate(backend)
    assert audio.samples.dtype == np.float32 and np.isfinite(audio.samples).all()
    assert audio.samples.shape == (2, 160_000)
    assert audio.metadata["dtype"] == dtype


def test_unload_releases_the_model(tmp_path, tiny_checkpoint):
    backend = make_backend(tmp_path, tiny_checkpoint)
    backend.load(backend._settings.device_plan)
    model = weakref.ref(backend._session.model)
    assert backend.loaded
    backend.unload()
    gc.collect()
    assert not backend.loaded and model() is None


def test_an_unknown_model_in_the_config_falls_back_to_musicgen_small(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        backend = make_backend(tmp_path, None, model="facebook/musicgen-smol")
    assert backend.model_id == "facebook/musicgen-small"
    assert "musicgen-smol" in caplog.text
