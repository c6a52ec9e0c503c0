"""The procedural backend sounds like music: levels, beats at the tempo, seeds, seamless loops."""

from __future__ import annotations

import numpy as np
import pytest

from lofi_daemon.cancel import CancelToken
from lofi_daemon.backends.procedural import SAMPLE_RATE, ProceduralBackend, parse_prompt, render
from lofi_daemon.errors import JobCancelled


class NoProgress:
    def plan(self, phases):
        pass

    def update(self, phase, current, total):
        pass


def make(prompt="lofi hip hop, jazzy piano, vinyl crackle", duration=20.0, seed=1):
    return render(prompt, duration, seed, NoProgress(), CancelToken())


def beat_period_sec(samples: np.ndarray) -> float:
    """Strongest onset periodicity between 0.25 and 1.2 s (autocorrelation of onset strength)."""
    mono = samples.mean(axis=0)
    frame = 480  # 10 ms
    energy = np.add.reduceat(np.diff(mono) ** 2, np.arange(0, mono.size - 1, frame))
    onset = np.maximum(0, np.diff(np.log(energy + 1e-9)))
    onset -= onset.mean()
    ac = np.correlate(onset, onset, "full")[onset.size - 1:]
    lo, hi = int(0.25 * 100), int(1.2 * 100)
    return (lo + int(np.argmax(ac[lo:hi]))) / 100


def test_output_is_48k_stereo_of_exactly_the_requested_length():
    # The tempo gives way so the loop closes; the length does not (only by < 5 ms where the
    # exact length would make the FFTs slow, which these are not).
    for duration in (5.0, 7.3, 33.3):
        audio = make(duration=duration)
        assert audio.sample_rate == SAMPLE_RATE == 48000
        assert audio.samples.shape == (2, int(round(duration * 48000)))
        assert audio.samples.dtype == np.float32


def test_it_is_neither_silent_nor_clipped():
    s = make().samples
    rms = float(np.sqrt(np.mean(s ** 2)))
    assert 0.05 < rms < 0.5
    assert float(np.max(np.abs(s))) < 0.95


def test_beats_fall_at_the_tempo():
    audio = make("lofi hip hop 80 bpm", duration=30.0)
    beat = 60.0 / audio.metadata["bpm"]
    period = beat_period_sec(audio.samples)
    # the strongest periodicity is the beat, or its half / double (swung eighths, backbeat)
    assert any(abs(period - beat * k) <= 0.03 * beat * k for k in (0.5, 1, 2)), (period, beat)
    assert audio.metadata["bpm"] == pytest.approx(80, abs=4)


def test_prompt_words_steer_tempo_and_mood():
    assert parse_prompt("upbeat happy beat").tempo > parse_prompt("chill rain sleep").tempo
    assert parse_prompt("lofi 95 bpm").tempo == 95
    assert parse_prompt("sad rainy night").minor and parse_prompt("happy sunny").minor is False
    assert parse_prompt("jazzy piano").genre == "jazz" and parse_prompt("rain").rain > 0
    assert parse_prompt("ambient, no drums").kit is None
    fast = make("upbeat energetic", duration=30.0).metadata["bpm"]
    slow = make("chill sleepy", duration=30.0).metadata["bpm"]
    assert fast > slow + 10


def test_the_same_seed_gives_identical_samples_and_another_seed_does_not():
    a, b, c = make(seed=5).samples, make(seed=5).samples, make(seed=6).samples
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_the_end_flows_into_the_start_without_a_jump():
    s = make(duration=12.0).samples.astype(np.float64)
    steps = np.abs(np.diff(s, axis=1))
    seam = np.abs(s[:, 0] - s[:, -1])
    assert np.all(seam <= np.percentile(steps, 99.9, axis=1))


def test_cancel_stops_at_the_next_bar():
    token = CancelToken()
    seen = []

    class CancelAtThirdBar(NoProgress):
        def update(self, phase, current, total):
            seen.append((phase, current))
            if phase == "bars" and current == 3:
                token.cancel()

    with pytest.raises(JobCancelled) as err:
        render("chill", 120.0, 1, CancelAtThirdBar(), token)
    assert err.value.at_step == 3 and ("bars", 4) not in seen


def test_backend_declares_its_range_and_is_always_ready():
    backend = ProceduralBackend()
    caps = backend.capabilities()
    assert (caps.min_duration_sec, caps.max_duration_sec, caps.sample_rate) == (5.0, 240.0, 48000)
    assert [p.name for p in caps.parameters] == ["section_offset"] and caps.param("section_offset").default == 0
    assert backend.is_installed() and backend.loaded and backend.size_bytes() == 0


def test_the_longest_track_renders_whole():
    s = make("rain jazz", duration=240.0).samples
    assert s.shape == (2, 240 * 48000)
    assert float(np.sqrt(np.mean(s[:, -48000:] ** 2))) > 0.02  # music to the very end
