"""The converter: the upstream checkpoint layout becomes diffusers components that make the same audio."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from lofi_daemon.cancel import CancelToken
from lofi_daemon.backends.ace_step_15.components import ComponentPaths, load_pipeline
from lofi_daemon.backends.ace_step_15.convert import (
    ConversionFailed,
    conversion_problem,
    convert,
    split_key,
)
from lofi_daemon.backends.ace_step_15.decode import decode, normalize
from lofi_daemon.backends.ace_step_15.sampling import SamplingRequest, sample_latents
from lofi_daemon.errors import ModelLoadFailed

HINT = "Run :LofiSetup ace-step-1.5 again."
DIT = "acestep-v15-turbo"


def _request(seed: int = 11) -> SamplingRequest:
    return SamplingRequest(prompt="lo-fi hip hop, mellow piano", duration_sec=2.0, seed=seed, steps=4,
                           guidance_scale=1.0, shift=3.0, cfg_interval_start=0.0, cfg_interval_end=1.0,
                           lyrics="[Instrumental]", bpm=80, keyscale="A minor", timesignature="4")


def _audio(paths: ComponentPaths) -> torch.Tensor:
    pipe = load_pipeline(paths, dtype=torch.float32, hint=HINT)
    latents = sample_latents(pipe, _request(), "cpu", report=lambda *a: None, cancel=CancelToken())
    return normalize(decode(pipe.vae, latents))


def test_upstream_keys_map_to_the_diffusers_components():
    assert split_key("decoder.proj_in.1.weight") == ("transformer", "proj_in_conv.weight")
    assert split_key("decoder.proj_out.1.bias") == ("transformer", "proj_out_conv.bias")
    assert split_key("decoder.layers.0.self_attn.q_proj.weight") == ("transformer", "layers.0.self_attn.q_proj.weight")
    assert split_key("encoder.lyric_encoder.layers.1.mlp.up_proj.weight") == (
        "condition_encoder", "lyric_encoder.layers.1.mlp.up_proj.weight")
    assert split_key("null_condition_emb") == ("condition_encoder", "null_condition_emb")
    assert split_key("tokenizer.quantizer.project_in.weight") is None  # 5 Hz audio codes: not text2music
    assert split_key("detokenizer.embed_tokens.weight") is None


def test_the_converted_original_layout_gives_bit_identical_audio(tiny_model, tmp_path):
    converted = convert(tiny_model.original / DIT, tmp_path / "converted", hint=HINT)
    from_original = _audio(ComponentPaths.original(tiny_model.original, converted.root))
    from_diffusers = _audio(ComponentPaths.diffusers(tiny_model.diffusers))
    assert from_original.shape == (1, 2, 50 * 1920)  # 2 s at 25 latents/s, hop 1920
    # Same weights, same dtype, same kernels: equal to the bit, not just within float noise.
    assert torch.equal(from_original, from_diffusers)


def test_a_finished_conversion_is_recorded_and_a_changed_output_is_found(tiny_model, tmp_path):
    out = tmp_path / "converted"
    reports = []
    convert(tiny_model.original / DIT, out, hint=HINT, on_progress=lambda done, total: reports.append((done, total)))
    assert reports[-1][0] == reports[-1][1] > 0  # every converted byte counted, the skipped ones not
    assert [d for d, _ in reports] == sorted(d for d, _ in reports)
    assert conversion_problem(tiny_model.original / DIT, out, thorough=True) is None
    assert not (tmp_path / "converted.converting").exists()
    weights = out / "transformer" / "diffusion_pytorch_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF  # same size, one byte off: only the checksum can tell
    weights.write_bytes(bytes(data))
    assert conversion_problem(tiny_model.original / DIT, out, thorough=False) is None
    assert "checksum" in conversion_problem(tiny_model.original / DIT, out, thorough=True)


def test_a_truncated_checkpoint_is_model_load_failed_with_the_setup_hint(tiny_model, tmp_path):
    dit = tmp_path / DIT
    shutil.copytree(tiny_model.original / DIT, dit)
    weights = dit / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:50_000])
    with pytest.raises(ModelLoadFailed) as err:
        convert(dit, tmp_path / "out", hint=HINT)
    assert err.value.hint == HINT and "model.safetensors" in err.value.message
    assert not (tmp_path / "out").exists()


def test_a_silence_latent_that_is_a_pickle_of_code_is_refused_without_running_it(tiny_model, tmp_path):
    dit = tmp_path / DIT
    shutil.copytree(tiny_model.original / DIT, dit)
    marker = tmp_path / "ran"
    # A pickle whose loading would call os.system: weights_only loading must refuse it.
    payload = (b"cos\nsystem\n(V" + f"touch {marker}".encode() + b"\ntR.")
    (dit / "silence_latent.pt").write_bytes(payload)
    with pytest.raises(ConversionFailed) as err:
        convert(dit, tmp_path / "out", hint=HINT)
    assert "silence_latent.pt" in err.value.message
    assert not marker.exists()


def test_weights_that_do_not_match_the_config_are_refused_naming_the_tensor(tiny_model, tmp_path):
    dit = tmp_path / DIT
    shutil.copytree(tiny_model.original / DIT, dit)
    config = json.loads((dit / "config.json").read_text())
    config["intermediate_size"] = 96  # the weights were made with 64
    (dit / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConversionFailed) as err:
        convert(dit, tmp_path / "out", hint=HINT)
    assert "wrong shape" in err.value.message and "mlp" in err.value.message


def test_a_config_without_a_needed_key_is_refused_naming_it(tiny_model, tmp_path):
    dit = tmp_path / DIT
    shutil.copytree(tiny_model.original / DIT, dit)
    config = json.loads((dit / "config.json").read_text())
    del config["timbre_hidden_dim"]
    (dit / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConversionFailed) as err:
        convert(dit, tmp_path / "out", hint=HINT)
    assert "timbre_hidden_dim" in err.value.message
