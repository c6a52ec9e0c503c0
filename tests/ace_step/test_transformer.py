"""The diffusion transformer and lyric Conformer against the official unit references."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from lofi_daemon.backends.ace_step.checkpoint import is_unused_transformer_key, load_transformer
from lofi_daemon.backends.ace_step.lyric_encoder import LyricEncoderConfig, RelPositionAttention
from lofi_daemon.backends.ace_step.rope import apply_rope, rope_tables
from lofi_daemon.backends.ace_step.transformer import TransformerConfig
from lofi_daemon.errors import ModelLoadFailed


@pytest.fixture
def transformer(golden):
    return load_transformer(golden.checkpoint, device="cpu", dtype=torch.float32)


def _inputs(ref):
    return dict(
        encoder_text_hidden_states=ref["in_encoder_text_hidden_states"],
        text_attention_mask=ref["in_text_attention_mask"],
        speaker_embeds=ref["in_speaker_embeds"],
        lyric_token_idx=ref["in_lyric_token_idx"],
        lyric_mask=ref["in_lyric_mask"],
    )


@pytest.mark.parametrize("key", ["unit_transformer_instrumental", "unit_transformer_lyrics_batch2"])
def test_forward_and_encode_match_the_official_transformer(golden, transformer, key):
    ref = golden.tensors(key)
    with torch.no_grad():
        states, mask = transformer.encode(**_inputs(ref))
        sample = transformer(
            hidden_states=ref["in_hidden_states"],
            attention_mask=ref["in_attention_mask"],
            timestep=ref["in_timestep"],
            **_inputs(ref),
        )
    golden.check(key, "out_encoder_hidden_states", states, ref["out_encoder_hidden_states"])
    golden.check(key, "out_encoder_hidden_mask", mask, ref["out_encoder_hidden_mask"])
    golden.check(key, "out_sample", sample, ref["out_sample"])


def test_lyric_encoder_matches_official_on_padded_batch(golden, transformer):
    key = "unit_transformer_lyrics_batch2"
    ref = golden.tensors(key)
    with torch.no_grad():
        lyrics = transformer.forward_lyric_encoder(ref["in_lyric_token_idx"], ref["in_lyric_mask"])
    golden.check(key, "out_lyric_encoder", lyrics, ref["out_lyric_encoder"])


def test_fully_masked_lyric_attention_gives_its_output_bias_not_nan():
    torch.manual_seed(0)
    attention = RelPositionAttention(heads=4, dim=32)
    torch.nn.init.normal_(attention.pos_bias_u)
    torch.nn.init.normal_(attention.pos_bias_v)
    x = torch.randn(1, 1, 32)
    all_padding = torch.ones(1, 1, 1, 1, dtype=torch.bool)
    pos_emb = torch.randn(1, 1, 32)
    out = attention(x, all_padding, pos_emb)
    assert torch.isfinite(out).all()
    # Zero attention probabilities -> zero context -> only linear_out's bias remains.
    torch.testing.assert_close(out[0, 0], attention.linear_out.bias, rtol=0, atol=0)


def test_rope_rotates_interleaved_pairs_with_half_split_frequencies():
    head_dim, position, theta = 8, 5, 10_000.0
    cos, sin = rope_tables(position + 1, head_dim, theta, device="cpu", dtype=torch.float32)
    inv_freq = [theta ** (-(2 * i) / head_dim) for i in range(head_dim // 2)]
    x = torch.zeros(head_dim)
    x[0] = 1.0  # first member of pair (0, 1)
    out = apply_rope(x.expand(position + 1, head_dim), cos, sin)[position]
    # Element 0 uses frequency 0, element 1 (same pair) uses frequency 1 = 1 mod D/2:
    assert out[0].item() == pytest.approx(math.cos(position * inv_freq[0]), abs=1e-6)
    assert out[1].item() == pytest.approx(math.sin(position * inv_freq[1]), abs=1e-6)
    assert out[2:].abs().max().item() == 0.0


def test_batched_uncond_with_erg_matches_separate_calls(golden, transformer):
    """Guided steps run cond and uncond (ERG-scaled queries) in one forward; each half
    must equal its own forward."""
    ref = golden.tensors("unit_transformer_instrumental")
    with torch.no_grad():
        states, mask = transformer.encode(**_inputs(ref))
        x, latent_mask, t = ref["in_hidden_states"], ref["in_attention_mask"], ref["in_timestep"]
        cond = transformer.decode(x, latent_mask, states, mask, t)
        uncond = transformer.decode(x, latent_mask, states, mask, t, erg_diffusion=torch.tensor([True]))
        both = transformer.decode(
            torch.cat([x, x]), torch.cat([latent_mask] * 2), torch.cat([states] * 2), torch.cat([mask] * 2),
            t.expand(2), erg_diffusion=torch.tensor([False, True]),
        )
    assert (cond - uncond).abs().max() > 1e-3  # the ERG scaling does change the prediction
    torch.testing.assert_close(both[:1], cond, rtol=0, atol=2e-6)
    torch.testing.assert_close(both[1:], uncond, rtol=0, atol=2e-6)


def test_loader_keeps_only_weights_inference_uses(golden, transformer):
    from safetensors import safe_open

    path = golden.checkpoint / "ace_step_transformer" / "diffusion_pytorch_model.safetensors"
    with safe_open(str(path), framework="pt") as f:
        stored = set(f.keys())
    loaded = set(transformer.state_dict())
    skipped = stored - loaded
    assert loaded <= stored
    assert skipped, "the fixture stores unused tensors; the loader must leave them out"
    assert all(is_unused_transformer_key(k) for k in skipped)
    assert {k.split(".")[0] for k in skipped} >= {"projectors", "transformer_blocks"}
    assert not any(".add_" in k or "to_add_out" in k for k in loaded)


def test_missing_lyric_encoder_config_falls_back_to_the_official_sizes(golden):
    raw = json.loads((golden.checkpoint / "ace_step_transformer" / "config.json").read_text())
    assert TransformerConfig.from_json(raw).lyric_encoder == LyricEncoderConfig(32, 4, 64, 6)
    raw.pop("lyric_encoder_config")
    assert TransformerConfig.from_json(raw).lyric_encoder == LyricEncoderConfig(1024, 16, 4096, 6)


def _copy_checkpoint(golden, tmp_path):
    dest = tmp_path / "checkpoint"
    shutil.copytree(golden.checkpoint, dest)
    for p in dest.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dest


def test_config_that_does_not_fit_the_weights_is_a_load_failure(golden, tmp_path):
    root = _copy_checkpoint(golden, tmp_path)
    config_path = root / "ace_step_transformer" / "config.json"
    raw = json.loads(config_path.read_text())
    raw["attention_head_dim"] = 32
    config_path.write_text(json.dumps(raw))
    with pytest.raises(ModelLoadFailed) as err:
        load_transformer(root, device="cpu", dtype=torch.float32)
    assert "wrong shape" in err.value.message
    assert "LofiSetup ace-step" in err.value.hint


def test_truncated_weights_are_a_load_failure(golden, tmp_path):
    root = _copy_checkpoint(golden, tmp_path)
    weights = root / "ace_step_transformer" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ModelLoadFailed) as err:
        load_transformer(root, device="cpu", dtype=torch.float32)
    assert "LofiSetup ace-step" in err.value.hint
