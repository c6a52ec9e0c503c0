"""Instrumental lyric tags -> the lyric-token ids the official tokenizer produces."""

from __future__ import annotations

import pytest

from lofi_daemon.backends.ace_step.lyric_tokens import encode_lyrics
from lofi_daemon.errors import ErrorCode, InvalidParams

TAG_CASES = ["euler_apg_instrumental_tag", "pingpong_cfg_inst_tag"]


@pytest.mark.parametrize("case", TAG_CASES)
def test_tags_give_the_ids_the_official_pipeline_passed_to_encode(golden, case):
    lyrics = golden.case(case)["call_kwargs"]["lyrics"]
    recorded = golden.case(case)["derived"]["lyrics"]
    tokens = encode_lyrics(lyrics)
    assert list(tokens.ids) == recorded["tokenize_lyrics_ids"]
    assert [list(tokens.mask)] == recorded["null_branch_lyric_mask"]
    ref = golden.tensors(f"e2e_{case}")
    assert ref["lyric_token_idx"][0].tolist() == list(tokens.ids)
    assert ref["lyric_mask"][0].tolist() == list(tokens.mask)


def test_empty_lyrics_are_one_masked_padding_token(golden):
    ref = golden.tensors("e2e_euler_apg")
    tokens = encode_lyrics("")
    assert [list(tokens.ids)] == ref["lyric_token_idx"].tolist() == [[0]]
    assert [list(tokens.mask)] == ref["lyric_mask"].tolist() == [[0]]


@pytest.mark.parametrize("variant", ["[Instrumental]", "  [INSTRUMENTAL] ", "[instrumental]"])
def test_tag_case_and_surrounding_spaces_do_not_matter(variant):
    assert encode_lyrics(variant) == encode_lyrics("[instrumental]")


def test_newlines_add_line_ends_like_the_official_tokenizer():
    assert encode_lyrics("[inst]\n").ids == (261, 259, 6688, 2, 2)
    assert encode_lyrics("\n[inst]").ids == (261, 2, 259, 6688, 2)


@pytest.mark.parametrize("lyrics", ["la la la", "[verse]", "[instrumental] and words"])
def test_real_lyrics_are_rejected_with_a_hint(lyrics):
    with pytest.raises(InvalidParams) as err:
        encode_lyrics(lyrics)
    assert err.value.code == ErrorCode.INVALID_PARAMS
    assert err.value.facts["field"] == "lyrics"
    assert "instrumental" in err.value.message
