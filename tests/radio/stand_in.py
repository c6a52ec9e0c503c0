"""A stand-in for a big model on a CPU, registered by dotted path (``stand_in:PacedBackend``).

It really takes its time: ``LOFI_TEST_GENERATION_SEC`` (default 60) of wall time per track,
80 % as 40 cancellable "diffusion" steps, 20 % (``LOFI_TEST_DECODE_SHARE``) as a "decode" in 2 s windows, each window
handed to ``request.windows`` when it is done (as ACE-Step / SA3 decoders would). The audio is
the procedural backend's for the same prompt and seed, so it is music and deterministic.

With ``continue_from`` it does what an inpainting model is asked to: the track begins with the
source's last ``CONTINUE_SEC`` seconds (read from its file), then goes on into new music (a
short crossfade from the source's natural continuation, its head, since procedural tracks
loop); ``join_frame`` in the metadata says where the new part starts.

``LOFI_TEST_STAND_IN_CAPS`` (comma-separated: ``continue``, ``windows``) picks what it declares.
"""

from __future__ import annotations

import os
import time

import numpy as np

from lofi_daemon import audio
from lofi_daemon.backends.base import Backend, Capabilities, GeneratedAudio
from lofi_daemon.backends.procedural import ProceduralBackend

RATE = 48_000
CONTINUE_SEC = 2.0
XFADE_SEC = 0.5
WINDOW_SEC = 2.0
STEPS = 40


class _Quiet:
    def plan(self, phases):  # type: ignore[no-untyped-def]
        pass

    def update(self, phase, current, total):  # type: ignore[no-untyped-def]
        pass


class PacedBackend(Backend):
    name = "paced"
    model_version = "paced-1"
    has_weights = False

    def __init__(self, settings: object = None, store: object = None) -> None:
        self.pace = float(os.environ.get("LOFI_TEST_GENERATION_SEC", "60"))
        self.decode_share = float(os.environ.get("LOFI_TEST_DECODE_SHARE", "0.2"))
        caps = os.environ.get("LOFI_TEST_STAND_IN_CAPS", "continue,windows").split(",")
        self._continues, self._windows = "continue" in caps, "windows" in caps

    def capabilities(self) -> Capabilities:
        return Capabilities(min_duration_sec=5.0, max_duration_sec=120.0, sample_rate=RATE,
                            description="test stand-in: procedural music at a big model's pace",
                            continues_audio=self._continues, decodes_in_windows=self._windows)

    def is_installed(self) -> bool:
        return True

    @property
    def loaded(self) -> bool:
        return True

    def load(self, device: object) -> None:
        pass

    def unload(self) -> None:
        pass

    def _music(self, request, duration):  # type: ignore[no-untyped-def]
        from lofi_daemon.backends.base import GenerationRequest

        inner = GenerationRequest(prompt=request.prompt, duration_sec=duration, seed=request.seed)
        return ProceduralBackend().generate(inner, _Quiet(), _never()).samples

    def generate(self, request, progress, cancel):  # type: ignore[no-untyped-def]
        started = time.monotonic()
        meta: dict = {}
        if request.continue_from is not None:
            source, rate = audio.read(request.continue_from.path)  # (channels, frames) at 48 kHz
            keep = int(CONTINUE_SEC * RATE)
            tail = source[:2, -keep:].astype(np.float32)
            new = self._music(request, max(5.0, request.duration_sec - CONTINUE_SEC))
            x = int(XFADE_SEC * RATE)
            t = (np.arange(x) + 0.5) / x
            bridge = source[:2, :x] * np.cos(0.5 * np.pi * t) + new[:, :x] * np.sin(0.5 * np.pi * t)
            samples = np.concatenate([tail, bridge.astype(np.float32), new[:, x:]], axis=1)
            meta = {"continues": request.continue_from.track_id, "join_frame": keep}
        else:
            samples = self._music(request, request.duration_sec)
        diffusion, decode = (1 - self.decode_share) * self.pace, self.decode_share * self.pace
        progress.plan([("diffusion", diffusion), ("decode", decode)])
        for step in range(STEPS):
            cancel.check(step, STEPS)
            self._wait_until(started + diffusion * (step + 1) / STEPS, cancel)
            progress.update("diffusion", step + 1, STEPS)
        win = int(WINDOW_SEC * RATE)
        windows = list(range(0, samples.shape[1], win))
        decode_started = time.monotonic()
        for i, start in enumerate(windows):
            cancel.check(STEPS, STEPS)
            self._wait_until(decode_started + decode * (i + 1) / len(windows), cancel)
            if request.windows is not None:
                request.windows.window(samples[:, start:start + win], RATE)
            progress.update("decode", i + 1, len(windows))
        return GeneratedAudio(samples=samples, sample_rate=RATE, metadata=meta, loopable=False)

    @staticmethod
    def _wait_until(deadline: float, cancel) -> None:  # type: ignore[no-untyped-def]
        while (left := deadline - time.monotonic()) > 0:
            if cancel.cancelled:
                return
            time.sleep(min(left, 0.05))


def _never():  # type: ignore[no-untyped-def]
    from lofi_daemon.cancel import CancelToken

    return CancelToken()
