"""The radio's procedural bridge: music steered by the radio's prompt, rendered as it plays.

While the first AI track is made (minutes on a CPU), the radio plays this. It renders the
procedural backend's music in sections of whole bars at the prompt's tempo (same seed: same
key and progression; on the procedural backend the radio's first track's seed and tempo, so the
bridge is that track's own song) and streams each one to the worker as soon as it is rendered (stream.py),
so the first sound comes after the first short section, not after the whole piece:

    section 0: the fewest bars that make 3 s   (0.1-0.5 s to render: the first sound)
    then 2, 4, 8 and 16 bars                     (each rendered while the ones before play:
                                               a section renders in a fifth of its length
                                               or less, even on two busy cores)

Each section is whole bars of a loop-closed piece, so the sound ringing past its end is its own
head: the join into the next section is a short crossfade from that head into the next head,
on the bar line. The last section is sent rotated by that crossfade's length and loops
sample-exactly until the AI track takes over (``bar_frames`` lets that happen on a bar line).

Runs in its own thread of the daemon (the job thread is busy with the AI track); everything
it sends hops to the event loop first.
"""

from __future__ import annotations

import importlib
import logging
import math
import secrets
import threading
from typing import Any, Callable

import numpy as np

from ..cancel import CancelToken
from ..errors import JobCancelled
from .mixer import RATE
from .stream import encode_chunk

log = logging.getLogger(__name__)

SECTION_BARS = (2, 4, 8, 16)  # after the first, short one: each renders while the ones before play
FIRST_SECTION_MIN_SEC = 3.0  # short: the first sound waits for its rendering
JOIN_SEC = 0.05
SONG_SEC = 60.0  # without a first track to match: the tempo a minute of the seed's song has
CHUNK_FRAMES = RATE // 2
PROCEDURAL = "lofi_daemon.backends.procedural"


class _Quiet:
    """The backend's progress goes nowhere: the bridge is no job."""

    def plan(self, phases: Any) -> None:
        pass

    def update(self, phase: str, current: int, total: int) -> None:
        pass


def tempo(prompt: str, seed: int, duration_sec: float | None) -> float:
    """The bpm the bridge plays at: that of a procedural track of this prompt, seed and length
    (the radio's first track, on the procedural backend), or of the seed's song."""
    module = importlib.import_module(PROCEDURAL)
    return float(module.song_tempo(prompt, seed, duration_sec or SONG_SEC))


class ProceduralBridge:
    def __init__(self, prompt: str, send: Callable[[dict[str, Any]], None], *, seed: int | None = None,
                 track_id: str | None = None, duration_sec: float | None = None) -> None:
        self.prompt = prompt
        self.seed = secrets.randbelow(2**32) if seed is None else seed
        self.track_id = track_id or "bridge-" + secrets.token_hex(4)
        self._send = send  # thread-safe: hops to the loop
        self._cancel = CancelToken()
        self.bpm = tempo(prompt, self.seed, duration_sec)
        self.bar_sec = 4 * 60.0 / self.bpm
        self.first_bars = max(1, math.ceil(FIRST_SECTION_MIN_SEC / self.bar_sec - 1e-9))
        self.frames_sent = 0
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lofi-radio-bridge", daemon=True)

    @property
    def bar_frames(self) -> float:
        return self.bar_sec * RATE

    def info(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "backend": "procedural", "bridge": True}

    def start(self) -> None:
        self._send({"cmd": "stream", "how": "play", "track_id": self.track_id, "info": self.info(),
                    "loopable": True, "bar_frames": self.bar_frames, "prebuffer_sec": 0.25,
                    "expected_frames": int((self.first_bars + sum(SECTION_BARS)) * self.bar_frames) + RATE})
        self._thread.start()

    def stop(self) -> None:
        """Stop rendering; what was sent stays playable (the worker's stop ends the sound)."""
        self._cancel.cancel()

    # ----- the bridge thread ------------------------------------------------------------------
    def _render(self, bars: int) -> np.ndarray:
        module = importlib.import_module(PROCEDURAL)
        # Whole bars at exactly this tempo, so the bar lines the worker counts are the music's.
        result = module.render(self.prompt, bars * self.bar_sec, self.seed, _Quiet(), self._cancel,
                               keep=module.Keep(bpm=self.bpm))
        return np.ascontiguousarray(np.asarray(result.samples, dtype=np.float32)[:2].T)

    def _push(self, frames: np.ndarray) -> None:
        for start in range(0, frames.shape[0], CHUNK_FRAMES):
            chunk = frames[start:start + CHUNK_FRAMES]
            self._send({"cmd": "stream_data", "track_id": self.track_id, "pcm": encode_chunk(chunk)})
            self.frames_sent += chunk.shape[0]

    def _run(self) -> None:
        join = int(JOIN_SEC * RATE)
        t = (np.arange(join, dtype=np.float64) + 0.5) / join
        fade_in = np.sin(0.5 * np.pi * t)[:, None].astype(np.float32)
        fade_out = np.cos(0.5 * np.pi * t)[:, None].astype(np.float32)
        loop_start = 0
        try:
            previous: np.ndarray | None = None
            sections = (self.first_bars, *SECTION_BARS)
            for index, bars in enumerate(sections):
                section = self._render(bars)
                last = index == len(sections) - 1
                if previous is None:
                    body = section if not last else np.concatenate([section, section[:join]])
                else:
                    # What rings past the previous section's end is its head: fade that into ours.
                    head = previous[:join] * fade_out + section[:join] * fade_in
                    rest = section[join:] if not last else np.concatenate([section[join:], section[:join]])
                    body = np.concatenate([head, rest])
                    if last:
                        loop_start = self.frames_sent + join  # the loop is the section rotated by `join`
                self._push(body)
                previous = section
        except JobCancelled:
            pass
        except Exception:  # the bridge is a courtesy: a failure must not take the radio down
            log.exception("radio bridge: rendering failed; it loops what it has")
        finally:
            self._send({"cmd": "stream_end", "track_id": self.track_id, "loop_start": loop_start})
            self.done.set()
