"""The mixer on its own: exact loops, click-free seams, equal-power crossfades, ramps."""

from __future__ import annotations

import numpy as np

from lofi_daemon.playback.mixer import BLOCK, RATE, Mixer, Voice

RAMP = int(0.02 * RATE)


def render(mixer: Mixer, seconds: float) -> np.ndarray:
    blocks = [mixer.render(BLOCK) for _ in range(int(np.ceil(seconds * RATE / BLOCK)))]
    return np.concatenate(blocks)


def stereo(mono: np.ndarray) -> np.ndarray:
    return np.stack([mono, mono], axis=1).astype(np.float32)


def sine_track(seconds: float, hz: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return stereo(amp * np.sin(2 * np.pi * hz * t))


NOISE_RMS = 0.15  # peaks stay under -1 dBFS, where the safety limiter is the identity


def noise_track(seconds: float, seed: int, rms: float = NOISE_RMS) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((int(seconds * RATE), 2)) * rms).astype(np.float32)


def test_loopable_track_repeats_on_its_exact_last_sample():
    track = sine_track(0.5, hz=100.0)  # 50 whole cycles: the file closes on itself
    mixer = Mixer()
    mixer.play(Voice(track, "a", loopable=True))
    out = render(mixer, 2.2)
    n = track.shape[0]
    expected = np.tile(track, (5, 1))[:out.shape[0]]
    # After the 20 ms start ramp, every pass is the file itself, sample for sample.
    np.testing.assert_array_equal(out[RAMP:4 * n], expected[RAMP:4 * n])
    own_step = np.abs(np.diff(track[:, 0])).max()
    for seam in (n, 2 * n, 3 * n):
        assert abs(out[seam, 0] - out[seam - 1, 0]) <= own_step * 1.0001


def test_track_not_made_to_loop_joins_its_tail_to_its_head_without_a_click():
    # 100.7 Hz does not close on itself: a hard wrap would jump by up to the full amplitude.
    track = sine_track(1.0, hz=100.7)
    hard_jump = abs(track[0, 0] - track[-1, 0])
    own_step = np.abs(np.diff(track[:, 0])).max()
    assert hard_jump > 20 * own_step  # the test means something: a plain loop would click
    mixer = Mixer()
    mixer.play(Voice(track, "a", loopable=False))
    out = render(mixer, 3.5)
    steps = np.abs(np.diff(out[:, 0]))
    assert steps[RAMP:].max() <= own_step * 1.05
    assert np.abs(out[RAMP:]).max() > 0.3  # still music all through


def test_queued_track_crossfades_at_equal_power():
    a, b = noise_track(10.0, 1), noise_track(10.0, 2)
    mixer = Mixer(crossfade_sec=4.0)
    mixer.set_loop(False)
    mixer.play(Voice(a, "a", loopable=False))
    mixer.enqueue(Voice(b, "b", loopable=False))
    out = render(mixer, 12.0)
    start = a.shape[0] - 4 * RATE  # the fade starts when the last 4 s of the first track begin
    mid = start + 2 * RATE
    window = out[mid - 2400:mid + 2400]
    level_db = 20 * np.log10(np.sqrt(np.mean(window ** 2)) / NOISE_RMS)
    assert abs(level_db) < 1.0
    # Before the fade it is the first track alone, sample for sample; after it, the second one.
    np.testing.assert_array_equal(out[RATE:start], a[RATE:start])
    after = start + 4 * RATE
    np.testing.assert_array_equal(out[after:after + RATE], b[4 * RATE:5 * RATE])


def test_pause_ramps_to_silence_holds_the_position_and_resume_ramps_back():
    track = stereo(np.full(RATE * 2, 0.5))
    mixer = Mixer()
    mixer.play(Voice(track, "a", loopable=True))
    render(mixer, 0.1)
    mixer.set_paused(True)
    down = mixer.render(BLOCK * 2)
    assert np.all(down[RAMP:] == 0.0)  # silent within the ramp
    assert np.abs(np.diff(down[:, 0])).max() <= 0.5 / RAMP * 1.01  # no step larger than the ramp allows
    held = mixer.current.pos
    render(mixer, 0.5)
    assert mixer.current.pos == held
    mixer.set_paused(False)
    up = mixer.render(BLOCK * 2)
    assert up[0, 0] > 0 and np.all(up[RAMP:, 0] == np.float32(0.5))
    assert np.abs(np.diff(up[:, 0])).max() <= 0.5 / RAMP * 1.01


def test_stop_while_paused_stays_silent():
    mixer = Mixer()
    mixer.play(Voice(stereo(np.full(RATE * 2, 0.5)), "a", loopable=True))
    render(mixer, 0.1)
    mixer.set_paused(True)
    render(mixer, 0.1)
    mixer.stop()
    assert np.all(render(mixer, 0.1) == 0.0)  # the paused track does not come back to fade out
    assert mixer.state == "stopped" and not mixer.active


def test_play_while_paused_starts_the_new_track_without_the_paused_one():
    mixer = Mixer()
    mixer.play(Voice(stereo(np.full(RATE * 2, 0.5)), "a", loopable=True))
    render(mixer, 0.1)
    mixer.set_paused(True)
    render(mixer, 0.1)
    mixer.play(Voice(stereo(np.full(RATE * 2, -0.25)), "b", loopable=True))
    out = render(mixer, 0.5)
    assert out[:, 0].max() <= 0.0  # nothing of the paused track, only the new one ramping in
    assert np.all(out[RAMP:, 0] == np.float32(-0.25)) and mixer.state == "playing"


def test_volume_moves_in_a_ramp_without_zipper_steps():
    track = stereo(np.full(RATE * 2, 0.5))
    mixer = Mixer()
    mixer.play(Voice(track, "a", loopable=True))
    render(mixer, 0.1)
    mixer.set_volume(1.5)
    out = mixer.render(BLOCK * 2)
    assert np.all(np.diff(out[:RAMP, 0]) > 0)  # rises every sample
    assert np.abs(np.diff(out[:, 0])).max() <= 0.5 / RAMP * 1.01
    np.testing.assert_allclose(out[RAMP:, 0], 0.75, rtol=1e-6)


def test_seek_continues_from_the_new_position_after_a_short_crossfade():
    track = noise_track(4.0, 3)
    mixer = Mixer()
    mixer.play(Voice(track, "a", loopable=True))
    render(mixer, 0.5)
    mixer.seek(2.0)
    out = render(mixer, 0.2)
    start = 2 * RATE
    np.testing.assert_array_equal(out[RAMP:RAMP + 4000], track[start + RAMP:start + RAMP + 4000])


def test_next_waits_for_the_next_track_then_crossfades_to_it_at_once():
    a, b = noise_track(20.0, 4), noise_track(20.0, 5)
    mixer = Mixer(crossfade_sec=4.0)
    mixer.play(Voice(a, "a", loopable=True))
    render(mixer, 0.5)
    assert mixer.next() is False  # nothing ready: the current track plays on
    render(mixer, 1.0)
    assert mixer.current.track_id == "a"
    mixer.enqueue(Voice(b, "b", loopable=True))
    render(mixer, 1.2)  # the quick crossfade (1 s) is over
    assert mixer.current.track_id == "b" and not mixer.outgoing
