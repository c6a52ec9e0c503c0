"""Play while decoding, tracks that flow into each other, and a mood change while it plays,
through the real daemon with the paced stand-in (stand_in.py) and the capture sink."""

from __future__ import annotations

import json
import time

import numpy as np

from playback_helpers import RATE, generate, playback, read_pcm, read_track, silent_runs, sound_span, wait_until
from radio_helpers import start_stand_in, stopped_clean, track_changes

KNEE = 10 ** (-1 / 20)  # the mixer's safety limiter leaves samples below -1 dBFS untouched


def message_index(d, pred) -> int:
    return next(i for i, m in enumerate(list(d.messages)) if isinstance(m, dict) and pred(m))


def test_a_track_plays_while_it_decodes_and_its_file_is_the_same_as_a_plain_run(cache_dir, tmp_path):
    plain_cache, cap = tmp_path / "plain" / "cache", tmp_path / "radio.f32"
    with start_stand_in(plain_cache, f"capture {tmp_path / 'unused.f32'} 1", pace_sec=2) as d:
        plain = generate(d, "night drive synths", 10, seed=5, backend="paced")
    with start_stand_in(cache_dir, f"capture {cap} 1", pace_sec=4) as d:
        reply = d.call("radio_start", prompt="night drive synths", backend="paced", duration_sec=10,
                       params={"seed": 5}, bridge="none", mode="shuffle")["result"]
        track_id = reply["first_track_id"]
        assert reply["bridge"]["kind"] == "none"
        done = d.wait_terminal(track_id, 60)
        wait_until(lambda: cap.exists() and cap.stat().st_size >= 9 * RATE * 8, 30, "nine seconds played")
        d.call("radio_stop")
    assert done["method"] == "generation_complete"
    # It was heard before it was finished: the worker played it while the decode went on.
    heard = message_index(d, lambda m: m.get("method") == "playback_state" and m["params"]["track_id"] == track_id
                          and m["params"]["state"] == "playing")
    finished = message_index(d, lambda m: m.get("method") == "generation_complete")
    assert heard < finished
    with open(done["path"], "rb") as streamed, open(plain["path"], "rb") as unstreamed:
        assert streamed.read() == unstreamed.read()  # streaming never changes the file's bits
    # What was heard is the track itself (the file is 16-bit: equal to its quantization step).
    out, source = read_pcm(cap), read_track(done["path"])
    begin = sound_span(out)[0]
    edge = int(0.03 * RATE)  # the file's 5 ms fade and the worker's 20 ms ramp in
    heard_sec = 5  # the next track crossfades in 4 s before the end of the 10 s pass
    np.testing.assert_allclose(out[begin + edge:begin + heard_sec * RATE], source[edge:heard_sec * RATE],
                               atol=2 / 32768)
    assert silent_runs(out[begin:sound_span(out)[1]]) == []


def test_stopping_while_a_track_streams_leaves_no_job_file_or_sound(cache_dir, tmp_path):
    cap = tmp_path / "radio.f32"
    with start_stand_in(cache_dir, f"capture {cap} 1", pace_sec=10, decode_share=0.7) as d:
        reply = d.call("radio_start", prompt="night drive synths", backend="paced", duration_sec=60,
                       bridge="none")["result"]
        track_id = reply["first_track_id"]
        # 3 s of diffusion, then 30 windows over 7 s: it plays while it decodes, and we stop it then.
        wait_until(lambda: playback(d)["track_id"] == track_id, 40, "the stream playing")
        assert d.notifications("generation_complete") == []
        d.call("radio_stop")
        end = d.wait_terminal(track_id, 20)
        clean = stopped_clean(d, cache_dir / "tracks")
        size = cap.stat().st_size
        time.sleep(0.5)
        assert cap.stat().st_size == size
    assert end["method"] == "generation_cancelled"
    assert clean["listed"] == set() and clean["strays"] == set()


def test_a_decode_slower_than_real_time_buffers_says_so_and_plays_on_in_order(cache_dir, tmp_path):
    cap = tmp_path / "radio.f32"
    # 6 s of audio decoded over 9 s (a 2 s window every 3 s): the playhead catches up.
    with start_stand_in(cache_dir, f"capture {cap} 1", pace_sec=12, decode_share=0.75) as d:
        reply = d.call("radio_start", prompt="slow tape", backend="paced", duration_sec=6, bridge="none",
                       mode="shuffle")["result"]
        track_id = reply["first_track_id"]
        done = d.wait_terminal(track_id, 60)
        wait_until(lambda: not playback(d)["buffering"], 20, "the stream playing on")
        d.call("radio_stop")
    states = [s for s in d.notifications("playback_state") if s["track_id"] == track_id]
    spells = sum(1 for a, b in zip(states, states[1:]) if b["buffering"] and not a["buffering"]
                 and b["position_sec"] > 0)  # (not the wait for the first window)
    assert 1 <= spells <= 2  # one or two waits (the second twice as long), not a stutter per window
    out, source = read_pcm(cap), read_track(done["path"])
    heard = out[np.any(out != 0, axis=1)]
    edge = int(0.03 * RATE)
    n = min(heard.shape[0], source.shape[0]) - edge
    # Apart from the waits (and the ramps around them), what was heard is the track, in order.
    close = np.all(np.abs(heard[edge:n] - source[edge:n]) <= 2 / 32768, axis=1)
    assert close.mean() > 0.9


def test_flow_joins_each_continuation_where_it_begins(cache_dir, tmp_path):
    cap = tmp_path / "radio.f32"
    # Capture at 2x: 8 s tracks, 2 s to make each; windows off so every track plays from its file.
    with start_stand_in(cache_dir, f"capture {cap} 2", pace_sec=2, caps="continue") as d:
        reply = d.call("radio_start", prompt="warm tape jazz", backend="paced", duration_sec=8,
                       bridge="procedural")["result"]
        assert reply["mode"] == "flow"
        wait_until(lambda: len(track_changes(d)) >= 4, 120, "bridge + three radio tracks")
        d.call("radio_stop")
        tracks = {t["track_id"]: t for t in d.call("list_tracks")["result"]["tracks"]}
    played = track_changes(d)
    first, second, third = played[1:4]
    sidecar = json.loads((cache_dir / "tracks" / f"{second}.json").read_text())
    assert sidecar["continues"] == first and sidecar["join_frame"] == 2 * RATE
    out = read_pcm(cap)
    a, b = read_track(tracks[first]["path"]), read_track(tracks[second]["path"])
    join = sidecar["join_frame"]
    # Find where the second track's new part begins in what was heard. The mixer's safety limiter
    # is the identity below -1 dBFS: samples are compared exactly where they are below it.
    quiet_b = np.all(np.abs(b[join:join + 2000]) < KNEE, axis=1)
    anchor = int(np.flatnonzero(quiet_b)[0])
    hits = [c - anchor for c in np.flatnonzero(np.all(out == b[join + anchor], axis=1))
            if c >= anchor and np.array_equal(out[c - anchor:c - anchor + 2000][quiet_b], b[join:join + 2000][quiet_b])]
    assert len(hits) >= 1
    i = hits[0]
    # Right before it, the first track's very end: joined where the continuation begins, no crossfade.
    quiet_a = np.all(np.abs(a[-2000:]) < KNEE, axis=1)
    assert quiet_a.mean() > 0.5
    np.testing.assert_array_equal(out[i - 2000:i][quiet_a], a[-2000:][quiet_a])
    assert third in tracks
    begin, end = sound_span(out)
    assert silent_runs(out[begin:end]) == []


def test_a_new_mood_while_it_plays_is_the_next_track(cache_dir, tmp_path):
    cap = tmp_path / "radio.f32"
    with start_stand_in(cache_dir, f"capture {cap} 1", pace_sec=3, caps="") as d:
        reply = d.call("radio_start", prompt="rainy jazz", backend="paced", duration_sec=8)["result"]
        old = reply["first_track_id"]
        changed = d.call("radio_set_prompt", prompt="sunny upbeat")["result"]
        assert changed["replaced"] == old and changed["upcoming_prompt"] == "sunny upbeat"
        new = changed["next_track_id"]
        assert playback(d)["upcoming_prompt"] == "sunny upbeat"
        wait_until(lambda: new in track_changes(d), 60, "the new mood playing")
        state = playback(d)
        d.call("radio_stop")
        clean = stopped_clean(d, cache_dir / "tracks")
    assert state["prompt"] == "sunny upbeat"
    assert d.wait_terminal(old, 5)["method"] == "generation_cancelled"
    assert old not in clean["listed"] and clean["strays"] == set()


def test_set_prompt_needs_a_running_radio_and_flow_needs_a_backend_that_continues(cache_dir, tmp_path):
    with start_stand_in(cache_dir, f"capture {tmp_path / 'o.f32'} 1", pace_sec=2, caps="") as d:
        off = d.call("radio_set_prompt", prompt="sunny")["error"]
        assert off["data"]["error_code"] == "PLAYBACK_FAILED" and "radio" in off["message"]
        flow = d.call("radio_start", prompt="rain", backend="paced", duration_sec=8, mode="flow")["error"]
        assert flow["data"]["field"] == "mode" and "cannot continue" in flow["message"]
        cont = d.call("generate", prompt="rain", duration_sec=8, backend="paced", continue_from="t000000000000")
        assert cont["error"]["data"]["field"] == "continue_from"


def test_generate_with_play_starts_while_it_decodes_and_a_cached_one_plays_at_once(cache_dir, tmp_path):
    cap = tmp_path / "out.f32"
    with start_stand_in(cache_dir, f"capture {cap} 1", pace_sec=4, decode_share=0.5) as d:
        reply = d.call("generate", prompt="night drive synths", duration_sec=10, seed=3, backend="paced",
                       play=True)["result"]
        track_id = reply["track_id"]
        done = d.wait_terminal(track_id, 60)
        heard = message_index(d, lambda m: m.get("method") == "playback_state"
                              and m["params"]["track_id"] == track_id and m["params"]["state"] == "playing")
        finished = message_index(d, lambda m: m.get("method") == "generation_complete")
        assert heard < finished  # it was playing before its file existed
        d.call("stop")
        wait_until(lambda: playback(d)["state"] == "stopped", 10, "stopped")
        again = d.call("generate", prompt="night drive synths", duration_sec=10, seed=3, backend="paced",
                       play=True)["result"]
        assert again["status"] == "cached" and again["track_id"] == track_id
        wait_until(lambda: (s := playback(d))["state"] == "playing" and s["track_id"] == track_id, 10,
                   "the cached track playing")
        d.call("stop")
    assert done["method"] == "generation_complete"
