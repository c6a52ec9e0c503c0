"""The prompt encoder (UMT5 + tokenizer from ``umt5-base/``) against the official references."""

from __future__ import annotations

import pytest
import torch

from lofi_daemon.backends.ace_step.text_encoder import MAX_TOKENS, TextEncoder
from lofi_daemon.errors import ModelLoadFailed

KEY = "unit_text_encoder"


@pytest.fixture
def text_encoder(golden):
    return TextEncoder.from_dir(golden.checkpoint / "umt5-base", device="cpu", dtype=torch.float32)


def _prompts(golden):
    return list(enumerate(golden.file_entry(KEY)["info"]["prompts"]))


def test_token_ids_and_hidden_states_match_the_official_pipeline(golden, text_encoder):
    ref = golden.tensors(KEY)
    for i, prompt in _prompts(golden):
        states = text_encoder.encode(prompt)
        golden.check(KEY, f"p{i}_input_ids", states.input_ids, ref[f"p{i}_input_ids"])
        golden.check(KEY, f"p{i}_attention_mask", states.attention_mask, ref[f"p{i}_attention_mask"])
        golden.check(KEY, f"p{i}_hidden_states", states.hidden_states, ref[f"p{i}_hidden_states"])


def test_erg_tag_null_text_matches_the_official_hooked_pass(golden, text_encoder):
    ref = golden.tensors(KEY)
    for i, prompt in _prompts(golden):
        null = text_encoder.encode(prompt, erg=True)
        golden.check(KEY, f"p{i}_hidden_states_erg_null", null.hidden_states, ref[f"p{i}_hidden_states_erg_null"])


def test_long_prompt_is_truncated_to_256_tokens_ending_with_eos(golden, text_encoder):
    _, long_prompt = _prompts(golden)[2]
    ids, mask = text_encoder.tokenize(long_prompt)
    assert ids.shape == (1, MAX_TOKENS)
    assert ids[0, -1].item() == text_encoder.tokenizer.eos_token_id
    assert mask.sum().item() == MAX_TOKENS


def test_erg_scaling_is_gone_after_the_erg_call(golden, text_encoder):
    prompt = _prompts(golden)[0][1]
    before = text_encoder.encode(prompt).hidden_states
    null = text_encoder.encode(prompt, erg=True).hidden_states
    after = text_encoder.encode(prompt).hidden_states
    assert (before - null).abs().max() > 1e-4
    assert torch.equal(before, after)


def test_missing_text_encoder_weights_are_a_load_failure(golden, tmp_path):
    import shutil

    folder = tmp_path / "umt5-base"
    shutil.copytree(golden.checkpoint / "umt5-base", folder)
    (folder / "model.safetensors").chmod(0o644)
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelLoadFailed) as err:
        TextEncoder.from_dir(folder, device="cpu", dtype=torch.float32)
    assert "LofiSetup ace-step" in err.value.hint
