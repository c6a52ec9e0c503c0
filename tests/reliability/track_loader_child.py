"""Child process for the track loader fuzz test: decode each file named on stdin, report each.

Runs under an address-space limit set by the parent (``resource.setrlimit`` before exec), so a
header that makes the loader allocate without bound shows up as a failure, not a swapping host.
One JSON line out per file: {"path", "outcome": "ok"|"unplayable"|"other", "detail"}, then
{"maxrss_kb"}: the peak RSS of this process alone (VmHWM; ``ru_maxrss`` would carry over the
parent's peak across exec, i.e. whatever the pytest worker held before, which made it flaky).
"""

from __future__ import annotations

import json
import sys

import numpy as np

from lofi_daemon.playback.worker import MAX_TRACK_SEC, RATE, Unplayable, load_voice


def main() -> None:
    for line in sys.stdin:
        case = json.loads(line)
        try:
            voice = load_voice({"path": case["path"], "track_id": "t-fuzz", "loopable": False,
                                "expect_sec": case.get("expect_sec")})
            fine = voice.n <= MAX_TRACK_SEC * RATE and bool(np.all(np.isfinite(voice.samples)))
            result = {"outcome": "ok" if fine else "other", "detail": f"{voice.n} frames"}
        except Unplayable as exc:
            result = {"outcome": "unplayable", "detail": str(exc)[:300]}
        except BaseException as exc:  # what the loader promises never to raise
            result = {"outcome": "other", "detail": f"{type(exc).__name__}: {exc}"[:300]}
        print(json.dumps({"path": case["path"], **result}), flush=True)
    print(json.dumps({"maxrss_kb": peak_rss_kb()}), flush=True)


def peak_rss_kb() -> int:
    for line in open("/proc/self/status", encoding="ascii"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


if __name__ == "__main__":
    main()
