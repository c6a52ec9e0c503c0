"""diffusers' DiT with our converted weights against the official DiT, and the converter's rules."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from sa3_fixtures import CONFIG, checkpoint, golden  # noqa: E402

from lofi_daemon.backends.stable_audio_3.convert import (  # noqa: E402
    Checkpoint,
    ConversionError,
    dit_state,
    same_s_state,
)


@pytest.fixture(scope="module")
def parts():
    ck = checkpoint()
    return ck.build_dit(), ck.build_duration_embedder()


def _call(dit, duration, local_add_cond):
    g = golden()
    context = torch.cat([g["dit.text"], duration[:, None]], dim=1)  # text tokens, then the duration token
    with torch.no_grad():
        return dit(g["dit.x"], g["dit.t"], encoder_hidden_states=context, global_hidden_states=duration,
                   local_add_cond=local_add_cond).sample


def test_the_duration_embedder_equals_the_official_seconds_conditioner(parts):
    _, duration = parts
    with torch.no_grad():
        assert torch.equal(duration(torch.tensor([12.5])), golden()["dit.duration"])


def test_the_dit_with_zero_inpaint_conditioning_equals_the_official_text_to_music_call(parts):
    dit, duration = parts
    with torch.no_grad():
        seconds = duration(torch.tensor([12.5]))
    velocity = _call(dit, seconds, torch.zeros(1, 17, 6))
    assert torch.equal(velocity, golden()["dit.velocity"])


def test_leaving_the_inpaint_conditioning_out_as_diffusers_does_is_not_the_same_model(parts):
    dit, duration = parts
    with torch.no_grad():
        seconds = duration(torch.tensor([12.5]))
    velocity = _call(dit, seconds, None)
    assert (velocity - golden()["dit.velocity"]).abs().max() > 1e-2


def test_the_dit_with_a_kept_region_equals_the_official_inpaint_call(parts):
    dit, duration = parts
    with torch.no_grad():
        seconds = duration(torch.tensor([12.5]))
    assert torch.equal(_call(dit, seconds, golden()["dit.local_cond"]), golden()["dit.velocity_inpaint"])


def test_every_tensor_of_the_original_file_is_claimed_and_every_module_key_filled():
    ck = checkpoint()
    ck.check_complete()  # nothing outside the three prefixes is left over
    ae_keys = {k for k in ck.tensors if k.startswith("pretransform.model.")}
    folded = {k for k in ae_keys if k.endswith(("weight_g", "weight_v"))}
    inv_freq = {k for k in ae_keys if k.endswith("rope.inv_freq")}
    converted = same_s_state(ck.tensors)
    assert len(converted) == len(ae_keys) - len(folded) // 2 - len(inv_freq) - 1  # -1: the empty noise scale
    dit_keys = {k for k in ck.tensors if k.startswith("model.model.")}
    assert len(dit_state(ck.tensors)) == len(dit_keys) + 1  # + the prompt padding embedding


def test_a_stray_tensor_is_refused_by_name():
    ck = checkpoint()
    tensors = dict(ck.tensors)
    tensors["model.model.transformer.layers.0.mystery.weight"] = torch.zeros(1)
    with pytest.raises(ConversionError, match="unexpected: transformer_blocks.0.mystery"):
        Checkpoint(tensors, ck.config).build_dit()
    tensors = dict(ck.tensors)
    tensors["model.model.extra_head.weight"] = torch.zeros(1)
    with pytest.raises(ConversionError, match="extra_head"):
        dit_state(tensors)
    tensors = dict(ck.tensors)
    tensors["conditioner.conditioners.lyrics.weight"] = torch.zeros(1)
    with pytest.raises(ConversionError, match="lyrics"):
        Checkpoint(tensors, ck.config).check_complete()


def test_a_missing_tensor_is_refused_by_name():
    ck = checkpoint()
    tensors = {k: v for k, v in ck.tensors.items() if not k.endswith("layers.1.ff.ff.2.bias")}
    with pytest.raises(ConversionError, match="missing"):
        Checkpoint(tensors, ck.config).build_dit()


@pytest.mark.parametrize("path,value,message", [
    (("model", "pretransform", "config", "decoder", "config", "chunk_midpoint_shift"), False, "chunk_midpoint_shift"),
    (("model", "pretransform", "config", "encoder", "config", "chunk_size"), 64, "chunk_size"),
    (("model", "pretransform", "config", "decoder", "config", "conv_mapping"), False, "conv_mapping"),
    (("model", "pretransform", "config", "encoder", "config", "strides"), [8], "strides"),
])
def test_the_autoencoder_config_values_the_module_is_built_on_are_asserted(path, value, message):
    config = json.loads(CONFIG.read_text())
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ConversionError, match=message):
        Checkpoint(checkpoint().tensors, config).build_same_s()


@pytest.mark.parametrize("key,value,message", [
    ("diffusion_objective", "v", "rf_denoiser"),
    ("config.attn_kwargs.differential", True, "differential"),
    ("config.global_cond_type", "prepend", "adaLN"),
])
def test_the_dit_config_values_it_relies_on_are_asserted(key, value, message):
    config = json.loads(CONFIG.read_text())
    node = config["model"]["diffusion"]
    *parents, last = key.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    with pytest.raises(ConversionError, match=message):
        Checkpoint(checkpoint().tensors, config).build_dit()
