"""The mixer never exceeds full scale and never clicks, whatever order the commands come in.

The tracks here are like real ones: a track made to loop closes on itself (whole cycles), any
other track has short faded edges. "The music's own step" is the largest sample-to-sample
change inside the tracks; the mixer may scale it by its gains (at most sqrt(2) x 1.5: one
equal-power crossfade at full volume) and add what a 20 ms ramp moves in one sample, never more.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lofi_daemon.playback.mixer import BLOCK, LIMIT_KNEE, MAX_VOLUME, RATE, Mixer, Voice

RAMP = int(0.02 * RATE)
# What the gains may move in one sample: a few equal-power fades over one ramp at once (in,
# out, the crossfade sum held), plus the pause and volume ramps.
RAMP_SLOPE = 6 * (math.pi / 2) / RAMP


def tone(seconds: float, hz: float, amp: float, *, loopable: bool) -> np.ndarray:
    n = int(seconds * RATE)
    if loopable:  # whole cycles: the last sample leads into the first like any other
        cycles = max(1, round(hz * n / RATE))
        hz = cycles * RATE / n
    t = np.arange(n) / RATE
    left = amp * np.sin(2 * np.pi * hz * t)
    right = amp * np.sin(2 * np.pi * hz * t + 1.0)
    x = np.stack([left, right], axis=1)
    if not loopable:  # 5 ms edge fades, as audio.finish gives every track not made to loop
        edge = int(0.005 * RATE)
        ramp = np.sin(0.5 * np.pi * (np.arange(edge) + 0.5) / edge)[:, None]
        x[:edge] *= ramp
        x[-edge:] *= ramp[::-1]
    return x.astype(np.float32)


def own_step(track: np.ndarray, *, loopable: bool) -> float:
    wrapped = np.concatenate([track, track[:1]]) if loopable else track
    return float(np.abs(np.diff(wrapped, axis=0)).max())


def assert_bounded_and_smooth(out: np.ndarray, tracks: list[tuple[np.ndarray, bool]]) -> None:
    assert np.all(np.isfinite(out))
    assert np.abs(out).max() <= 1.0
    step = max(own_step(t, loopable=lp) for t, lp in tracks)
    peak = max(float(np.abs(t).max()) for t, _ in tracks)
    allowed = MAX_VOLUME * (math.sqrt(2) * step + peak * RAMP_SLOPE)
    steps = np.abs(np.diff(out, axis=0)).max(axis=1)
    worst = int(steps.argmax())
    assert steps[worst] <= allowed, f"a step of {steps[worst]:.4f} at frame {worst} (the music allows {allowed:.4f})"


def render(mixer: Mixer, frames: int) -> np.ndarray:
    return np.concatenate([mixer.render(BLOCK) for _ in range(math.ceil(frames / BLOCK))])


# ----- the storms the issue reproduced ------------------------------------------------------------

def test_ten_seeks_in_a_row_stay_below_full_scale_without_a_jump():
    track = tone(5.0, 110.0, 0.9, loopable=True)
    mixer = Mixer()
    mixer.play(Voice(track, "a", loopable=True))
    out = [render(mixer, RATE // 4)]
    for k in range(10):  # one seek per block: each lands while the last one is still fading
        mixer.seek(0.3 * k + 0.1)
        out.append(mixer.render(BLOCK))
    out.append(render(mixer, RATE // 4))
    out = np.concatenate(out)
    assert_bounded_and_smooth(out, [(track, True)])


def test_hundreds_of_plays_of_two_tracks_stay_below_full_scale_without_a_jump():
    a, b = tone(3.0, 97.0, 0.9, loopable=False), tone(3.0, 131.0, 0.9, loopable=False)
    mixer = Mixer()
    mixer.play(Voice(a, "a", loopable=False))
    out = [render(mixer, RATE // 4)]
    for k in range(400):
        track = (a, b)[k % 2]
        mixer.play(Voice(track, "ab"[k % 2], loopable=False))
        out.append(mixer.render(BLOCK // 4 if k % 3 else BLOCK))
    out.append(render(mixer, RATE))
    assert_bounded_and_smooth(np.concatenate(out), [(a, False), (b, False)])


def test_a_pause_then_play_inside_the_pause_ramp_does_not_cut_the_paused_track():
    a, b = tone(2.0, 100.0, 0.8, loopable=True), tone(2.0, 150.0, 0.8, loopable=True)
    mixer = Mixer()
    mixer.play(Voice(a, "a", loopable=True))
    out = [render(mixer, RATE // 4)]
    mixer.set_paused(True)
    out.append(mixer.render(RAMP // 3))  # a third of the way down: the track is still heard
    mixer.play(Voice(b, "b", loopable=True))
    out.append(render(mixer, RATE // 4))
    assert_bounded_and_smooth(np.concatenate(out), [(a, True), (b, True)])
    assert mixer.state == "playing" and mixer.current.track_id == "b"


# ----- the safety limiter ------------------------------------------------------------------------

def test_the_limiter_is_transparent_below_minus_one_dbfs_and_bounds_what_is_above():
    quiet = tone(1.0, 100.0, LIMIT_KNEE * 0.999, loopable=True)
    mixer = Mixer()
    mixer.play(Voice(quiet, "q", loopable=True))
    out = render(mixer, 2 * RATE)
    np.testing.assert_array_equal(out[RAMP:RATE], quiet[RAMP:RATE])  # sample for sample
    assert mixer.limited_samples == 0
    mixer.set_volume(MAX_VOLUME)  # 1.5 x 0.89: well past full scale before the limiter
    loud = render(mixer, RATE)
    assert np.abs(loud).max() <= 1.0 and np.abs(loud).max() > LIMIT_KNEE
    assert mixer.limited_samples > 0 and mixer.limited_peak > 1.3
    assert_bounded_and_smooth(loud, [(quiet, True)])


# ----- any order at all ----------------------------------------------------------------------------

TRACK = st.builds(
    lambda sec, hz, amp, loopable: (tone(sec, hz, amp, loopable=loopable), loopable),
    st.floats(0.1, 1.5), st.floats(40.0, 300.0), st.floats(0.2, 1.0), st.booleans())

COMMAND = st.one_of(
    st.tuples(st.just("render"), st.integers(1, 3 * BLOCK)),
    st.tuples(st.just("play"), st.integers(0, 2)),
    st.tuples(st.just("enqueue"), st.integers(0, 2)),
    st.tuples(st.just("seek"), st.floats(0.0, 0.999)),
    st.tuples(st.just("volume"), st.floats(0.0, MAX_VOLUME)),
    st.tuples(st.just("crossfade"), st.floats(0.0, 2.0)),
    st.tuples(st.just("loop"), st.booleans()),
    st.tuples(st.sampled_from(["pause", "resume", "stop", "next"]), st.none()),
)


# derandomize: the same 150 sequences on every run, so CI cannot pass one day and fail the next
# (3,000 random ones were explored while writing it).
@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(tracks=st.lists(TRACK, min_size=3, max_size=3), commands=st.lists(COMMAND, min_size=1, max_size=60))
def test_any_command_sequence_keeps_every_sample_finite_within_full_scale_and_click_free(tracks, commands):
    mixer = Mixer()
    out = []
    for name, arg in commands:
        if name == "render":
            out.append(mixer.render(arg))
        elif name in ("play", "enqueue"):
            samples, loopable = tracks[arg]
            getattr(mixer, name)(Voice(samples, f"t{arg}", loopable=loopable))
        elif name == "seek":
            if mixer.current is not None:
                mixer.seek(arg * mixer.current.n / RATE)
        elif name == "volume":
            mixer.set_volume(arg)
        elif name == "crossfade":
            mixer.set_crossfade(arg)
        elif name == "loop":
            mixer.set_loop(arg)
        elif name in ("pause", "resume"):
            mixer.set_paused(name == "pause")
        elif name == "stop":
            mixer.stop()
        else:
            mixer.next()
    out.append(render(mixer, RATE // 2))  # and how it settles
    assert_bounded_and_smooth(np.concatenate(out), tracks)
