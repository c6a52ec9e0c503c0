"""Track library on disk, and the audio finishing step."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lofi_daemon import audio
from lofi_daemon.errors import TrackNotFound
from lofi_daemon.tracks import TrackLibrary, cache_key


T1, T2 = "t" + "1" * 12, "t" + "2" * 12
K1 = "a" * 64


def key(**over):
    args = dict(backend="procedural", model_version="1", prompt="rain", seed=1, duration_sec=5.0, fmt="wav",
                params={"a": 1})
    args.update(over)
    return cache_key(**args)


def test_cache_key_changes_with_every_input_that_changes_the_audio():
    base = key()
    for change in (dict(backend="musicgen"), dict(model_version="2"), dict(prompt="Rain"), dict(seed=2),
                   dict(duration_sec=6.0), dict(fmt="flac"), dict(params={"a": 2})):
        assert key(**change) != base, change
    assert key(params={"a": 1}) == base


def test_saved_tracks_are_found_by_id_and_key_and_survive_a_rescan(tmp_path):
    lib = TrackLibrary(tmp_path)
    track = lib.save(T1, b"RIFFdata", "wav", {"cache_key": K1, "prompt": "rain", "created_at": 1})
    assert track.path.read_bytes() == b"RIFFdata"
    assert json.loads((tmp_path / f"{T1}.json").read_text())["prompt"] == "rain"
    assert not list(tmp_path.glob("*.tmp"))
    again = TrackLibrary(tmp_path)
    assert again.get(T1).path == track.path and again.find_cached(K1).track_id == T1


def test_a_track_deleted_behind_our_back_is_not_served_from_cache(tmp_path):
    lib = TrackLibrary(tmp_path)
    lib.save(T1, b"x", "wav", {"cache_key": K1})
    (tmp_path / f"{T1}.wav").unlink()
    assert lib.find_cached(K1) is None


def test_unreadable_sidecars_and_temp_files_of_dead_writers_are_ignored(tmp_path):
    (tmp_path / f"{T2}.json").write_text("{not json")
    (tmp_path / f"{T2}.wav").write_bytes(b"RIFF")
    dead_pid = 2**22 + 1  # above pid_max: no such process
    (tmp_path / f"{T1}.wav.{dead_pid}.00ff.tmp").write_bytes(b"half")
    lib = TrackLibrary(tmp_path)
    assert lib.list() == [] and not (tmp_path / f"{T1}.wav.{dead_pid}.00ff.tmp").exists()


def test_delete_removes_audio_and_sidecar(tmp_path):
    lib = TrackLibrary(tmp_path)
    lib.save(T1, b"x", "wav", {})
    lib.delete(T1)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(TrackNotFound):
        lib.get(T1)


def test_list_is_newest_first_and_filters_by_backend(tmp_path):
    lib = TrackLibrary(tmp_path)
    lib.save(T1, b"x", "wav", {"created_at": 1, "backend": "procedural"})
    lib.save(T2, b"x", "wav", {"created_at": 2, "backend": "musicgen"})
    assert [t.track_id for t in lib.list()] == [T2, T1]
    assert [t.track_id for t in lib.list(backend="procedural")] == [T1]


def test_a_folder_dated_in_the_future_is_not_listed_again_on_every_request(tmp_path, monkeypatch):
    import os
    import time

    lib = TrackLibrary(tmp_path)
    lib.save(T1, b"x", "wav", {"created_at": 1, "backend": "procedural"})
    ahead = time.time() + 3600  # a synced cache, or a clock that was wrong
    os.utime(tmp_path, (ahead, ahead))
    assert [t.track_id for t in lib.list()] == [T1]
    listings = []
    real_scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda path: listings.append(path) or real_scandir(path))
    for _ in range(5):
        assert [t.track_id for t in lib.list()] == [T1]
    assert listings == []  # the folder did not change: nothing to read again


def test_finish_resamples_to_48k_stereo_with_faded_edges():
    rate = 32000
    t = np.arange(rate * 2) / rate
    mono = (0.5 * np.sin(2 * np.pi * 440 * t) + 0.3).astype(np.float32)[None]  # DC offset: a click if unfaded
    out = audio.finish(mono, rate)
    assert out.shape == (2, 96000) and out.dtype == np.float32
    assert np.array_equal(out[0], out[1])
    assert abs(out[0, 0]) < 1e-6 and abs(out[0, -1]) < 1e-6
    # the tone survives resampling at the right pitch
    spectrum = np.abs(np.fft.rfft(out[0, 4800:-4800]))
    peak_hz = np.argmax(spectrum[1:]) + 1
    assert abs(peak_hz * 48000 / (out.shape[1] - 9600) - 440) < 2


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg"])
def test_encoded_files_read_back_at_48k(tmp_path, fmt):
    sig = np.zeros((2, 48000), np.float32)
    sig[:, ::100] = 0.5
    data = audio.encode(sig, 48000, fmt)
    path = tmp_path / f"x.{fmt}"
    path.write_bytes(data)
    back, rate = audio.read(path)
    assert rate == 48000 and back.shape[0] == 2 and abs(back.shape[1] - 48000) < 2000
