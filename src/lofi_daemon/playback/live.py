"""Play while decoding: a job's decoded windows go to the playback worker as they come.

``App`` asks ``PlaybackService.live_windows(track_id)`` before a job of a backend that
``decodes_in_windows``; when that track is to be played at once (the radio has nothing else to
play, or a generate asked to play), it gets a ``LiveWindows``, which the backend fills from the
job thread. Each window is made 48 kHz stereo (a streaming resampler, so windows join
seamlessly), cut into chunks and hopped to the event loop, which sends them on the worker pipe
(``stream.py``). The track file is still written from the whole result as always: streaming
changes what you hear earlier, never the bits in the library.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

import numpy as np

from .mixer import RATE
from .stream import encode_chunk

log = logging.getLogger(__name__)

CHUNK_FRAMES = RATE // 2  # half a second per command: small lines, prompt hand-over
Send = Callable[[dict[str, Any]], None]


class LiveWindows:
    """Filled from the job thread; every decision is taken on the event loop: whether the track
    is wanted live is asked at each window (``wanted``), so a radio whose bridge ends, or a track
    that becomes the one to play, can start streaming late from the windows kept so far."""

    def __init__(self, track_id: str, send: Send, loop: asyncio.AbstractEventLoop, *,
                 wanted: Callable[[], bool], info: dict[str, Any], expected_frames: int,
                 prebuffer_sec: float = 1.0, on_start: Callable[[], None] = lambda: None) -> None:
        self.track_id = track_id
        self._send = send
        self._loop = loop
        self._wanted = wanted
        self._info = info
        self._expected = expected_frames
        self._prebuffer = prebuffer_sec
        self._on_start = on_start
        self._resampler: Any = None
        self._backlog: list[np.ndarray] = []  # windows kept while nobody listens (loop thread)
        self.streaming = False
        self.frames_sent = 0
        self.closed = False  # job thread: no more windows

    # ----- the job thread ---------------------------------------------------------------------
    def window(self, samples: np.ndarray, sample_rate: int) -> None:
        if self.closed:
            return
        audio = np.asarray(samples, dtype=np.float32)
        if audio.ndim == 1:
            audio = audio[None, :]
        if audio.shape[0] == 1:
            audio = np.repeat(audio, 2, axis=0)
        frames = np.ascontiguousarray(audio[:2].T)
        if sample_rate != RATE:
            if self._resampler is None:
                from .. import audio as audio_io

                self._resampler = audio_io.stream_resampler(sample_rate, RATE, 2)
            frames = self._resampler.resample_chunk(frames, last=False)
        self._hop(self._deliver, frames)

    def close(self) -> None:
        """The backend is done: the rest goes out and the stream ends (then it loops)."""
        if self.closed:
            return
        if self._resampler is not None:
            self._hop(self._deliver, self._resampler.resample_chunk(np.zeros((0, 2), dtype=np.float32), last=True))
        self.closed = True
        self._hop(self._finish, False)

    def abort(self) -> None:
        """Cancelled or failed: what was started stops (no orphan sound)."""
        if not self.closed:
            self.closed = True
            self._hop(self._finish, True)

    def _hop(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closing: nobody is listening any more
            self.closed = True

    # ----- the loop ---------------------------------------------------------------------------
    def _deliver(self, frames: np.ndarray) -> None:
        if frames.shape[0]:
            self._backlog.append(frames)
        if not self.streaming and self._wanted():
            self.streaming = True
            self._on_start()
            self._send({"cmd": "stream", "how": "play", "track_id": self.track_id, "info": self._info,
                        "expected_frames": self._expected, "prebuffer_sec": self._prebuffer})
        if self.streaming:
            backlog, self._backlog = self._backlog, []
            for piece in backlog:
                for start in range(0, piece.shape[0], CHUNK_FRAMES):
                    chunk = piece[start:start + CHUNK_FRAMES]
                    self._send({"cmd": "stream_data", "track_id": self.track_id, "pcm": encode_chunk(chunk)})
                    self.frames_sent += chunk.shape[0]

    def _finish(self, aborted: bool) -> None:
        self._backlog = []
        if self.streaming:
            self._send({"cmd": "stream_end", "track_id": self.track_id, "aborted": aborted})
