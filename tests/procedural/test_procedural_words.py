"""What the prompt's words do, and that the user is told which ones were understood."""

from __future__ import annotations

import numpy as np
import pytest

from lofi_daemon.backends.procedural import describe_report, parse_prompt, render
from lofi_daemon.backends.procedural.tempo import fit
from lofi_daemon.cancel import CancelToken


class NoProgress:
    def plan(self, phases):
        pass

    def update(self, phase, current, total):
        pass


def test_understood_and_ignored_words_are_reported():
    choices = parse_prompt("chill lofi with rain, orchestral bagpipes please")
    assert choices.understood == ("chill", "lofi", "rain", "orchestral")
    assert choices.ignored == ("bagpipes",)
    assert describe_report(choices.report()) == "understood: chill, lofi, rain, orchestral · ignored: bagpipes"
    assert describe_report(parse_prompt("zzz").report()) == "understood: nothing · ignored: zzz"


def test_a_number_is_a_tempo_only_with_bpm():
    assert parse_prompt("lofi for 60 minutes").tempo_explicit is False
    assert "60" in parse_prompt("lofi for 60 minutes").ignored
    assert parse_prompt("slow jazz 140").tempo_explicit is False
    assert parse_prompt("lofi 95 bpm").tempo == 95 and parse_prompt("lofi 95bpm").tempo == 95
    assert parse_prompt("bpm 70 jazz").tempo == 70
    assert parse_prompt("lofi 400 bpm").tempo_explicit is False  # out of range: said so, not used
    assert any("400 bpm" in word for word in parse_prompt("lofi 400 bpm").ignored)


def test_negations_undo_a_word():
    assert parse_prompt("not upbeat").tempo < parse_prompt("upbeat").tempo
    assert parse_prompt("lofi, no drums").kit is None and parse_prompt("lofi").kit == "dusty"
    assert parse_prompt("rain").rain > 0 and parse_prompt("without rain").rain == 0
    assert parse_prompt("not sad").minor is False and parse_prompt("sad").minor is True
    assert parse_prompt("no piano, jazz").keys != "piano"
    assert "no drums" in parse_prompt("lofi, no drums").understood
    assert parse_prompt("not upbeat, without rain").understood == ("not upbeat", "without rain")


def test_words_choose_instruments_and_the_second_instrument_plays_the_melody():
    assert parse_prompt("jazz").bass == "upright" and parse_prompt("jazz").kit == "brushes"
    assert parse_prompt("synthwave").keys == "synth" and parse_prompt("synthwave").swing == 0.5
    choices = parse_prompt("guitar and strings")
    assert (choices.keys, choices.lead) == ("guitar", "strings")
    assert 0.55 <= parse_prompt("lofi").swing <= 0.62


@pytest.mark.parametrize("bpm", [50, 63, 72, 85, 97, 118, 140, 160])
def test_the_fitted_tempo_is_within_two_percent_from_10_to_240_seconds(bpm):
    for duration in list(np.arange(10.0, 240.1, 3.7)) + [240.0]:
        grid = fit(float(duration), bpm, 48000, 5.0, 240.0)
        assert abs(grid.bpm / bpm - 1) <= 0.02, (duration, grid)
        assert abs(grid.frames / 48000 - duration) <= 0.005  # the length stays (to the sample, mostly)
        assert grid.frames / grid.beats * bpm / 60 / 48000 == pytest.approx(bpm / grid.bpm)


def test_rendered_tracks_keep_the_asked_tempo_and_the_bars_fall_on_it():
    cases = (("rainy night 68 bpm", 30.0, 68, ["rainy", "night", "68 bpm"]), ("lofi 80 bpm", 10.0, 80, ["lofi", "80 bpm"]))
    for prompt, duration, bpm, understood in cases:
        audio = render(prompt, duration, 1, NoProgress(), CancelToken())
        assert audio.metadata["bpm"] == pytest.approx(bpm, rel=0.02)
        assert audio.samples.shape[1] == duration * 48000
        assert audio.prompt_report == {"understood": understood, "ignored": []}
