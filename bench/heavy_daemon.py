"""The real daemon, where a prompt starting with HEAVY first runs a CPU-heavy torch workload.

It stands in for an ACE-Step / MusicGen-sized generation on a CPU: for
``LOFI_BENCH_HEAVY_SEC`` seconds, float32 matmuls on every torch thread (as a transformer
step does), numpy FFTs, and pure-Python loops that hold the GIL, in turns; then the
procedural track is rendered as usual. Used by bench/bench_playback.py.
"""

from __future__ import annotations

import os
import time

from lofi_daemon.__main__ import main
from lofi_daemon.backends import procedural

HEAVY_SEC = float(os.environ.get("LOFI_BENCH_HEAVY_SEC", "240"))
_real_generate = procedural.ProceduralBackend.generate


def _heavy_then_real(self, request, progress, cancel):  # type: ignore[no-untyped-def]
    if not request.prompt.startswith("HEAVY"):
        return _real_generate(self, request, progress, cancel)
    import numpy as np
    import torch

    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    x = np.random.default_rng(0).standard_normal(1 << 20)
    started = time.monotonic()
    steps = int(HEAVY_SEC)
    progress.plan([("denoise", HEAVY_SEC)])
    step = 0
    while (elapsed := time.monotonic() - started) < HEAVY_SEC:
        cancel.check(step, steps)
        for _ in range(8):
            a = torch.tanh(a @ b) * 0.5  # all torch threads, GIL released inside
        np.fft.irfft(np.fft.rfft(x))  # numpy, GIL released in the FFT
        total = 0
        for i in range(200_000):  # pure Python: holds the GIL
            total += i * i
        step = min(steps, int(elapsed))
        progress.update("denoise", step, steps)
    return _real_generate(self, request, progress, cancel)


procedural.ProceduralBackend.generate = _heavy_then_real

if __name__ == "__main__":
    main()
