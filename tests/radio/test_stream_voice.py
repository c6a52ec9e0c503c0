"""The streamed source on its own, read by the real mixer: audio that grows while it plays,
buffering when it runs dry, a continuation joined where it begins, a hand-over on a bar line."""

from __future__ import annotations

import numpy as np

from lofi_daemon.playback.mixer import BLOCK, RATE, Mixer, Voice
from lofi_daemon.playback.stream import (PcmBuffer, Segment, StreamInbox, StreamVoice, decode_chunk,
                                         encode_chunk, file_voice)


def tone(seconds: float, hz: float, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    mono = (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    return np.stack([mono, -mono], axis=1)


def blocks(mixer: Mixer, count: int) -> np.ndarray:
    return np.concatenate([mixer.render(BLOCK) for _ in range(count)])


def test_chunks_round_trip_through_the_command_text_exactly():
    x = tone(0.1, 440)
    np.testing.assert_array_equal(decode_chunk(encode_chunk(x)), x)


def test_a_stream_plays_what_has_arrived_and_goes_on_as_chunks_come():
    inbox = StreamInbox()
    voice = inbox.open({"track_id": "s", "prebuffer_sec": 0.05, "loopable": True})  # wraps exactly
    source = tone(2.0, 330)
    mixer = Mixer(ramp_sec=0.0001)
    inbox.take({"cmd": "stream_data", "track_id": "s", "pcm": encode_chunk(source[:RATE // 2])})
    mixer.play(voice)
    first = blocks(mixer, 10)  # 10240 frames, all arrived
    inbox.take({"cmd": "stream_data", "track_id": "s", "pcm": encode_chunk(source[RATE // 2:])})
    inbox.take({"cmd": "stream_end", "track_id": "s"})
    rest = blocks(mixer, 90)
    out = np.concatenate([first, rest])[: source.shape[0]]
    ramp = 5  # the mixer's fade-in from silence
    np.testing.assert_allclose(out[ramp:], source[ramp:], atol=1e-6)
    assert not voice.buffering and voice.silent_frames == 0
    assert "s" not in inbox.buffers  # ended: the inbox forgets it


def test_a_stream_that_runs_dry_buffers_in_silence_says_so_and_resumes_in_order():
    inbox = StreamInbox()
    voice = inbox.open({"track_id": "s", "prebuffer_sec": 0.1, "loopable": True})
    source = tone(1.0, 220)
    mixer = Mixer(ramp_sec=0.0001)
    inbox.take({"cmd": "stream_data", "track_id": "s", "pcm": encode_chunk(source[:2048])})
    mixer.play(voice)
    out = [blocks(mixer, 4)]  # 4096 frames asked, 2048 there
    assert voice.buffering
    kinds = [e["kind"] for e in voice.drain_events()]
    assert kinds == ["buffering"]
    inbox.take({"cmd": "stream_data", "track_id": "s", "pcm": encode_chunk(source[2048:4096])})
    out.append(blocks(mixer, 1))  # 2048 ahead is below the 4800-frame prebuffer: still silent
    assert voice.buffering
    inbox.take({"cmd": "stream_data", "track_id": "s", "pcm": encode_chunk(source[4096:])})
    inbox.take({"cmd": "stream_end", "track_id": "s"})
    out.append(blocks(mixer, 60))
    assert [e["kind"] for e in voice.drain_events()] == ["buffered"]
    played = np.concatenate(out)
    loud = played[np.any(played != 0, axis=1)]
    source = source[np.any(source != 0, axis=1)]
    # Nothing skipped, nothing doubled: the sound is the source in order, with one silent wait.
    np.testing.assert_allclose(loud[5:source.shape[0] - 5], source[5:source.shape[0] - 5], atol=1e-6)
    assert voice.silent_frames > 0


def test_a_continuation_is_joined_where_it_begins_with_no_crossfade():
    a, overlap = tone(1.0, 200), int(0.25 * RATE)
    # The continuation starts with a's last quarter second, then goes on with new music.
    b = np.concatenate([a[-overlap:], tone(1.0, 300)])
    mixer = Mixer(ramp_sec=0.0001)
    voice = file_voice(a, {"track_id": "a"})
    mixer.play(voice)
    head = blocks(mixer, 10)
    voice.chain(file_voice(b, {"track_id": "b", "from_frame": overlap}).seg)
    out = np.concatenate([head, blocks(mixer, 110)])
    np.testing.assert_allclose(out[5:a.shape[0]], a[5:], atol=1e-6)
    # b is no loop: its own pass ends a seam (0.25 s) before its end, where it wraps to its head.
    after = b.shape[0] - overlap - int(0.25 * RATE)
    np.testing.assert_array_equal(out[a.shape[0]:a.shape[0] + after], b[overlap:overlap + after])
    started = [e for e in voice.drain_events() if e["kind"] == "track_started"]
    assert started == [{"kind": "track_started", "track_id": "b", "previous": "a", "joined": True,
                        "join_frame": overlap}]
    assert voice.track_id == "b"


def test_a_finished_bridge_loops_its_last_section_sample_exactly():
    inbox = StreamInbox()
    voice = inbox.open({"track_id": "bridge", "loopable": True, "prebuffer_sec": 0.05})
    intro, section = tone(0.5, 100), tone(0.75, 150)
    inbox.take({"cmd": "stream_data", "track_id": "bridge", "pcm": encode_chunk(np.concatenate([intro, section]))})
    inbox.take({"cmd": "stream_end", "track_id": "bridge", "loop_start": intro.shape[0]})
    mixer = Mixer(ramp_sec=0.0001)
    mixer.play(voice)
    out = blocks(mixer, 150)
    n0 = intro.shape[0]
    looped = out[n0:n0 + 3 * section.shape[0]]
    np.testing.assert_allclose(looped, np.concatenate([section] * 3), atol=1e-6)


def test_a_hand_over_at_the_boundary_starts_the_crossfade_on_the_next_bar_line():
    bar = 0.5 * RATE
    buf = PcmBuffer.complete(tone(4.0, 100), bar_frames=bar)
    bridge = StreamVoice(Segment("bridge", buf, loopable=True))
    mixer = Mixer(ramp_sec=0.0001, crossfade_sec=0.2)
    mixer.play(bridge)
    blocks(mixer, 30)  # 30720 frames in: the next bar line is at 48000
    nxt = Voice(tone(3.0, 500), "ai", loopable=False)
    mixer.enqueue(nxt)
    bridge.hand_over_at_boundary(mixer.crossfade_frames)
    blocks(mixer, 20)
    started = [e for e in mixer.drain_events() if e["kind"] == "track_started" and e["track_id"] == "ai"]
    assert [e["frame"] for e in started] == [2 * int(bar)]
    assert started[0]["fade_frames"] == mixer.crossfade_frames


def test_a_stream_aborted_mid_way_ends_instead_of_waiting_for_ever():
    inbox = StreamInbox()
    voice = inbox.open({"track_id": "s", "prebuffer_sec": 0.05})
    inbox.take({"cmd": "stream_data", "track_id": "s", "pcm": encode_chunk(tone(0.1, 300))})
    mixer = Mixer(ramp_sec=0.0001)
    mixer.play(voice)
    blocks(mixer, 2)
    inbox.take({"cmd": "stream_end", "track_id": "s", "aborted": True})
    blocks(mixer, 2)
    assert mixer.current is None
    assert any(e["kind"] == "ended" and e["track_id"] == "s" for e in mixer.drain_events())


def test_a_continuation_with_a_lead_in_is_moved_into_before_the_join_without_a_step():
    a, overlap = tone(1.0, 200), int(0.5 * RATE)
    new = tone(1.0, 300)
    # A prefix that only stands for a's end (a codec's reconstruction, a lead-in): a's end at a
    # third of its level, ending in the new part's own last frames, which flow into its first.
    lead = int(0.25 * RATE)
    prefix = 0.33 * a[-overlap:]
    prefix[-lead:] = new[-lead:]
    b = np.concatenate([prefix, new])
    mixer = Mixer(ramp_sec=0.0001)
    voice = file_voice(a, {"track_id": "a"})
    mixer.play(voice)
    head = blocks(mixer, 4)
    voice.chain(file_voice(b, {"track_id": "b", "from_frame": overlap, "lead_in": lead}).seg)
    out = np.concatenate([head, blocks(mixer, 80)])
    n, fade = a.shape[0], lead
    np.testing.assert_allclose(out[5:n - fade], a[5:n - fade], atol=1e-6)  # a itself, up to the fade
    np.testing.assert_allclose(out[n - 1], prefix[-1], atol=1e-6)  # its last frame is the prefix's own
    np.testing.assert_array_equal(out[n:n + RATE // 2], new[:RATE // 2])  # then the new part, exactly
    own = np.abs(np.diff(np.concatenate([a, new]), axis=0)).max()
    assert np.abs(np.diff(out[n - fade - 10:n + 10], axis=0)).max() <= own * 1.05  # no step at the join
    # A continuation that names no lead-in is spliced on as it is: a to its last frame, then b.
    plain = file_voice(a, {"track_id": "a"})
    mixer = Mixer(ramp_sec=0.0001)
    mixer.play(plain)
    head = blocks(mixer, 4)
    plain.chain(file_voice(b, {"track_id": "b", "from_frame": overlap}).seg)
    out = np.concatenate([head, blocks(mixer, 80)])
    np.testing.assert_allclose(out[5:n], a[5:n], atol=1e-6)


def test_a_continuation_loops_over_its_new_part_not_the_prefix():
    a, overlap = tone(0.5, 200), int(0.25 * RATE)
    new = tone(0.5, 300)
    b = np.concatenate([a[-overlap:], new])
    voice = file_voice(b, {"track_id": "b", "from_frame": overlap, "loopable": True})
    out = np.zeros((3 * new.shape[0], 2), dtype=np.float32)
    voice.read(out)
    np.testing.assert_array_equal(out, np.concatenate([new, new, new]))  # wraps to join_frame, exactly


def test_next_skips_to_a_chained_continuation_and_one_still_being_made_plays_when_it_comes():
    from lofi_daemon.playback.worker import join, skip

    a, overlap = tone(2.0, 200), int(0.25 * RATE)
    b = np.concatenate([a[-overlap:], tone(2.0, 300)])
    mixer = Mixer(ramp_sec=0.0001)
    voice = file_voice(a, {"track_id": "a"})
    mixer.play(voice)
    blocks(mixer, 4)
    join(mixer, file_voice(b, {"track_id": "b", "from_frame": overlap}), "a")
    assert mixer.current is voice and voice.chained and mixer.queued is None
    skip(mixer)  # chained, not queued: the continuation now, from its join frame
    assert mixer.current.track_id == "b" and mixer.current.pos == overlap
    blocks(mixer, 4)
    # A skip asked for while the next continuation is still being made: it plays when it comes.
    skip(mixer)
    assert mixer.current.track_id == "b" and mixer.skip_pending
    c = np.concatenate([b[-overlap:], tone(2.0, 400)])
    join(mixer, file_voice(c, {"track_id": "c", "from_frame": overlap}), "b")
    assert mixer.current.track_id == "c" and not mixer.skip_pending


def test_a_track_handed_to_a_bridge_that_has_not_sounded_yet_is_the_first_sound():
    import io

    from lofi_daemon.playback.worker import Worker

    worker = Worker(io.BytesIO(), "capture /dev/null 1")
    bridge = worker.streams.open({"track_id": "bridge", "loopable": True, "bar_frames": RATE * 3.0})
    worker.apply({"cmd": "stream", "how": "play", "track_id": "bridge"}, bridge)
    track = file_voice(tone(2.0, 300), {"track_id": "t", "stream": True})
    worker.apply({"cmd": "enqueue", "track_id": "t", "at_boundary": True}, track)
    # No bar line to wait for: nothing of the bridge was heard, so the track plays at once.
    assert worker.mixer.current is track and worker.mixer.queued is None
