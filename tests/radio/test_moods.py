"""Prompt similarity: which library track bridges a prompt, and the gentle walk through prompts."""

from __future__ import annotations

from lofi_daemon.playback.moods import Similarity, gentle_order, nearest, words


def test_words_drop_filler_and_meet_their_stems():
    assert words("Rainy jazz with the drums, chilling") == ["rain", "jazz", "drum", "chill"]


def test_the_nearest_prompt_shares_the_rarest_words():
    library = ["sunny upbeat pop", "rainy jazz piano at night", "jazz funk upbeat"]
    assert nearest("chill rain, jazz", library)[0] == 1  # rain is rarer than jazz here
    assert nearest("death metal", library) is None  # nothing in common: no bridge from the library
    assert nearest("anything", []) is None


def test_the_same_words_are_one_and_none_in_common_is_zero():
    sim = Similarity(["rainy jazz", "sunny pop"])
    assert abs(sim("rainy jazz", "jazz, rain") - 1.0) < 1e-9
    assert sim("rainy jazz", "sunny pop") == 0.0


def test_prompts_are_walked_neighbouring_moods_first():
    prompts = ["rainy jazz", "sunny upbeat pop", "sad piano night", "jazz rain night", "upbeat sunny dance",
               "piano sad"]
    walked = [prompts[i] for i in gentle_order(prompts)]
    assert walked[0] == "rainy jazz"  # the first given starts
    assert walked[:2] == ["rainy jazz", "jazz rain night"]
    assert {walked[2], walked[3]} == {"sad piano night", "piano sad"}
    assert sorted(walked) == sorted(prompts)  # each once
