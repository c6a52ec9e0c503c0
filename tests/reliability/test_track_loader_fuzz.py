"""The track loader on randomly damaged files: only the documented errors, bounded memory, no hang.

Real tracks in every format the daemon writes (wav, flac, ogg) are damaged at random — cut
short, bytes flipped (in the header and in the audio), spans overwritten, junk spliced in, size
fields set to 4 GiB — and decoded by the playback worker's own loader in a child process with
an address-space limit (``resource.setrlimit``). Every file either plays (finite samples,
within the length limit) or is refused with ``Unplayable``, the one error the loader raises
(sent as ``playback_error``); the library's ``verify`` answers TRACK_DAMAGED for each.
"""

from __future__ import annotations

import hashlib
import json
import random
import resource
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lofi_daemon import audio
from lofi_daemon.errors import TrackDamaged
from lofi_daemon.tracks import Track, TrackLibrary

CASES_PER_FORMAT = 60
ADDRESS_SPACE = 3 << 30  # numpy, libsndfile and their threads fit well inside; a runaway does not
MAX_RSS_KB = 1 << 20  # 1 GiB: the largest file a damaged 1 s header may claim decodes within it
HANG_SEC = 180  # not a speed limit: a loader stuck on one file would never finish at all

CHILD = Path(__file__).with_name("track_loader_child.py")


def real_track(seconds: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(5)
    t = np.arange(int(seconds * 48_000)) / 48_000
    mono = 0.4 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)
    return np.stack([mono, np.roll(mono, 17)]).astype(np.float32)


def damage(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    kind = rng.randrange(7)
    if kind == 0:  # cut short anywhere, the header included
        return bytes(b[:rng.randrange(len(b))])
    if kind == 1:  # a few bytes flipped in the header
        for _ in range(rng.randint(1, 6)):
            b[rng.randrange(min(64, len(b)))] ^= 1 << rng.randrange(8)
    elif kind == 2:  # bytes flipped anywhere
        for _ in range(rng.randint(1, 40)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif kind == 3:  # a span overwritten with noise
        start = rng.randrange(len(b))
        end = min(len(b), start + rng.randint(1, 4096))
        b[start:end] = bytes(rng.randrange(256) for _ in range(end - start))
    elif kind == 4:  # junk spliced in
        at = rng.randrange(len(b))
        b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 2048)))
    elif kind == 5:  # every 32-bit field of the header set to "4 GiB" in turn, one of them here
        at = rng.randrange(0, min(60, len(b) - 4), 4)
        b[at:at + 4] = struct.pack("<I", 0xFFFFFFFF)
    else:  # the audio zeroed from some point on, the length kept
        at = rng.randrange(len(b))
        b[at:] = bytes(len(b) - at)
    return bytes(b)


@pytest.mark.timeout(HANG_SEC + 60)
def test_randomly_damaged_tracks_are_played_or_refused_with_the_documented_error(tmp_path):
    rng = random.Random(20)
    samples = real_track()
    library = TrackLibrary(tmp_path / "tracks")
    cases = []
    for fmt in ("wav", "flac", "ogg"):
        whole = audio.encode(samples, 48_000, fmt)
        for k in range(CASES_PER_FORMAT):
            damaged = damage(whole, rng)
            if damaged == whole:
                continue
            path = tmp_path / f"t{fmt[:2]}{k:010x}.{fmt}"
            path.write_bytes(damaged)
            cases.append({"path": str(path), "expect_sec": 1.0 if k % 2 else None, "whole": whole})

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    stdin = "".join(json.dumps({"path": c["path"], "expect_sec": c["expect_sec"]}) + "\n" for c in cases)
    run = subprocess.run([sys.executable, str(CHILD)], input=stdin, capture_output=True, text=True,
                         preexec_fn=limit, timeout=HANG_SEC)
    assert run.returncode == 0, f"the loader died (code {run.returncode}): {run.stderr[-2000:]}"
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    results, usage = lines[:-1], lines[-1]
    assert len(results) == len(cases)
    other = [r for r in results if r["outcome"] == "other"]
    assert other == [], other[:5]
    assert not [r for r in results if r["detail"] == "not enough memory to decode it"]
    assert usage["maxrss_kb"] < MAX_RSS_KB
    outcomes = {r["outcome"] for r in results}
    assert outcomes == {"ok", "unplayable"}  # the damage was real: some files still decode, most do not
    # A length check with the sidecar's duration refuses what decodes shorter or longer.
    for case, result in zip(cases, results):
        if case["expect_sec"] and result["outcome"] == "ok":
            assert result["detail"] == "48000 frames"
    # And before any of it, the library refuses every one of them.
    for case in cases:
        path = Path(case["path"])
        track = Track(path.stem, path, {"sha256": hashlib.sha256(case["whole"]).hexdigest(), "prompt": "fuzz"})
        with pytest.raises(TrackDamaged):
            library.verify(track)
