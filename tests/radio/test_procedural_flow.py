"""The procedural radio flows: each next track is the same song's next section in its key and
tempo, joined where the continuation begins, without a click; a mood change keeps key and tempo.
Through the real daemon, the real playback worker and the capture sink (4x real time)."""

from __future__ import annotations

import json

import numpy as np

from playback_helpers import RATE, playback, read_pcm, read_track, silent_runs, sound_span, start, wait_until
from radio_helpers import track_changes

KNEE = 10 ** (-1 / 20)  # the mixer's safety limiter leaves samples below -1 dBFS untouched
SPAN = 2000


def sidecar(cache_dir, track_id: str) -> dict:
    return json.loads((cache_dir / "tracks" / f"{track_id}.json").read_text())


def find(out: np.ndarray, part: np.ndarray) -> int:
    """Where ``part`` is heard in ``out``, compared exactly where it is below the limiter's knee."""
    quiet = np.all(np.abs(part) < KNEE, axis=1)
    anchor = int(np.flatnonzero(quiet)[0])
    hits = [c - anchor for c in np.flatnonzero(np.all(out == part[anchor], axis=1))
            if c >= anchor and np.array_equal(out[c - anchor:c - anchor + len(part)][quiet], part[quiet])]
    assert hits, "the continuation's new part is not in what was heard"
    return hits[0]


def test_flow_on_procedural_goes_on_in_the_next_section_joined_without_a_click(cache_dir, tmp_path):
    cap = tmp_path / "radio.f32"
    with start(cache_dir, f"capture {cap} 4") as d:
        reply = d.call("radio_start", prompt="lofi hip hop", duration_sec=45, bridge="none")["result"]
        assert reply["mode"] == "flow"  # the procedural backend continues audio: flow by default
        wait_until(lambda: len(track_changes(d)) >= 2, 120, "the second track playing")
        size = cap.stat().st_size
        wait_until(lambda: cap.stat().st_size >= size + RATE * 8, 30, "a second more")
        d.call("radio_stop")
        tracks = {t["track_id"]: t for t in d.call("list_tracks")["result"]["tracks"]}
    first, second = track_changes(d)[:2]
    one, two = sidecar(cache_dir, first), sidecar(cache_dir, second)
    # The same song: its key, mode and tempo, its seed, and the section after the first track's.
    assert two["continues"] == first and two["same_song"] is True and two["song_seed"] == one["seed"]
    assert two["key"] == one["key"] and abs(two["bpm"] - one["bpm"]) < 0.01
    assert two["section_offset"] == one["next_section_offset"] > one["section_offset"]
    assert two["sections"][0][0] != "intro"  # it goes on where the song had got to
    a, b = read_track(tracks[first]["path"]), read_track(tracks[second]["path"])
    join, lead = two["join_frame"], two["lead_in_frames"]
    assert 2 * RATE <= join < b.shape[0] // 2 and 0 < lead < join
    out = read_pcm(cap)
    i = find(out, b[join:join + SPAN])
    # Right before it, the first track's own end; over its lead-in the worker moves into the
    # continuation's prefix, which leads into the new part.
    quiet = np.all(np.abs(a[-lead - SPAN:-lead]) < KNEE, axis=1)
    np.testing.assert_array_equal(out[i - lead - SPAN:i - lead][quiet], a[-lead - SPAN:-lead][quiet])
    # No click: the step into the join is no larger than the music's own steps around it.
    steps = np.abs(np.diff(out[i - RATE // 10:i + RATE // 10], axis=0)).max(axis=1)
    at_join = steps[RATE // 10 - 1]
    own = np.percentile(np.delete(steps, RATE // 10 - 1), 99)
    assert at_join <= own, (at_join, own)
    begin, end = sound_span(out)
    assert silent_runs(out[begin:end]) == []


def test_a_mood_change_in_flow_keeps_the_key_and_tempo(cache_dir, tmp_path):
    cap = tmp_path / "radio.f32"
    with start(cache_dir, f"capture {cap} 4") as d:
        reply = d.call("radio_start", prompt="rainy jazz piano", duration_sec=30, bridge="none")["result"]
        first = reply["first_track_id"]
        wait_until(lambda: playback(d)["track_id"] == first, 60, "the first track playing")
        changed = d.call("radio_set_prompt", prompt="upbeat synthwave")["result"]
        new = changed["next_track_id"]
        wait_until(lambda: new in track_changes(d), 120, "the new mood playing")
        d.call("radio_stop")
    one, two = sidecar(cache_dir, first), sidecar(cache_dir, new)
    assert two["prompt"] == "upbeat synthwave" and two["continues"] == first and two["same_song"] is False
    assert two["genre"] == "synthwave" != one["genre"]  # the new mood's music ...
    assert two["key"] == one["key"] and abs(two["bpm"] - one["bpm"]) < 0.01  # ... in the key and tempo it had
    assert two["kept"] == ["key", "mode", "tempo"]
