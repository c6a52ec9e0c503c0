"""Play while decoding, the daemon's side: windows from the job thread become stream commands
on the event loop, at 48 kHz, only once someone wants them, and a cancel ends what was sent."""

from __future__ import annotations

import asyncio
import threading

import numpy as np

from lofi_daemon.playback.live import LiveWindows
from lofi_daemon.playback.stream import decode_chunk


def run(windows_at: int, pieces: list[np.ndarray], wanted_after: int, end: str = "close"):
    """Feed ``pieces`` (channels, frames) from a thread; wanted from the ``wanted_after``-th on."""
    sent: list[dict] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        seen = {"n": 0}

        def wanted() -> bool:
            seen["n"] += 1
            return seen["n"] > wanted_after

        live = LiveWindows("t1", sent.append, loop, wanted=wanted, info={}, expected_frames=0)

        def job() -> None:
            for piece in pieces:
                live.window(piece, windows_at)
            live.close() if end == "close" else live.abort()

        thread = threading.Thread(target=job)
        thread.start()
        while thread.is_alive():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)

    asyncio.run(main())
    return sent


def pcm(sent: list[dict]) -> np.ndarray:
    return np.concatenate([decode_chunk(c["pcm"]) for c in sent if c["cmd"] == "stream_data"])


def test_windows_kept_until_wanted_then_all_sent_in_order_and_ended():
    rng = np.random.default_rng(0)
    whole = rng.standard_normal((2, 96_000)).astype(np.float32) * 0.1
    pieces = [whole[:, i:i + 30_000] for i in range(0, 96_000, 30_000)]
    sent = run(48_000, pieces, wanted_after=2)
    assert [c["cmd"] for c in sent][0] == "stream" and sent[-1] == {"cmd": "stream_end", "track_id": "t1",
                                                                    "aborted": False}
    np.testing.assert_array_equal(pcm(sent), whole.T)  # nothing lost while nobody listened


def test_a_model_rate_is_resampled_as_one_stream_with_no_seam_at_the_windows():
    t = np.arange(44_100 * 2) / 44_100
    mono = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    pieces = [mono[None, i:i + 10_000] for i in range(0, mono.size, 10_000)]
    out = pcm(run(44_100, pieces, wanted_after=0))
    assert abs(out.shape[0] - 96_000) <= 2 and np.array_equal(out[:, 0], out[:, 1])  # 48 kHz, centred stereo
    expected = 0.3 * np.sin(2 * np.pi * 440 * np.arange(out.shape[0]) / 48_000)
    middle = slice(2_000, out.shape[0] - 2_000)  # away from the filter's start and end
    assert np.max(np.abs(out[middle, 0] - expected[middle])) < 1e-3


def test_a_cancel_mid_way_ends_the_stream_as_aborted_and_never_started_sends_nothing():
    piece = np.zeros((2, 4800), dtype=np.float32)
    sent = run(48_000, [piece, piece], wanted_after=0, end="abort")
    assert sent[-1]["cmd"] == "stream_end" and sent[-1]["aborted"] is True
    assert run(48_000, [piece, piece], wanted_after=99, end="abort") == []
