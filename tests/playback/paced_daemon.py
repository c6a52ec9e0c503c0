"""The real daemon with a procedural backend slower than real time (for the radio tests).

Each generation takes at least ``LOFI_TEST_GENERATION_SEC`` of wall time, as a big model on
a CPU would: the backend renders the track, then waits the rest of that time in small,
cancellable steps while reporting progress. Everything else is the real daemon.
"""

from __future__ import annotations

import os
import time

from lofi_daemon.__main__ import main
from lofi_daemon.backends import procedural

PACE_SEC = float(os.environ.get("LOFI_TEST_GENERATION_SEC", "5"))
_real_generate = procedural.ProceduralBackend.generate


def _paced_generate(self, request, progress, cancel):  # type: ignore[no-untyped-def]
    started = time.monotonic()
    result = _real_generate(self, request, progress, cancel)
    steps = 50
    progress.plan([("wait", PACE_SEC)])
    for step in range(steps):
        cancel.check(step, steps)
        left = started + PACE_SEC * (step + 1) / steps - time.monotonic()
        if left > 0:
            time.sleep(left)
        progress.update("wait", step + 1, steps)
    return result


procedural.ProceduralBackend.generate = _paced_generate

if __name__ == "__main__":
    main()
