"""Run the ACE-Step 1.5 converter on damaged copies of a tiny checkpoint, in this process.

    python converter_cases.py WORKDIR CASES_JSON   ->  one JSON line per case on stdout

Each case copies the tiny upstream DiT folder, damages it as the case says, converts it
into ``<case>/cache/converted`` and reports what happened (``ok`` or the exception's class
and message), how long it took and the process's peak RSS after it. Run as a child so a
hang or a memory blow-up is the parent's to see (and kill), never the test runner's.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "ace_step_15"))

import torch  # noqa: E402

from lofi_daemon.backends.ace_step_15.convert import convert  # noqa: E402
from tiny_acestep15 import save_original, tiny_pipeline  # noqa: E402

DIT = "acestep-v15-turbo"


def damage(dit: Path, case: dict, outside: Path, out_dir: Path) -> None:
    kind, name = case["kind"], case.get("file", "config.json")
    target = dit / name
    if kind == "symlink_dev_zero":
        target.unlink()
        target.symlink_to("/dev/zero")
    elif kind == "fifo":
        target.unlink()
        os.mkfifo(target)
    elif kind == "config_value":
        config = json.loads(target.read_text())
        value = case["value"]
        config[case["key"]] = {"nan": math.nan, "inf": math.inf}[value] if value in ("nan", "inf") else value
        target.write_text(json.dumps(config))  # json writes NaN/Infinity as upstream's Python would
    elif kind == "sparse_huge":
        os.truncate(target, case["bytes"])
    elif kind == "plant_converting_symlink":
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        out_dir.with_name(out_dir.name + ".converting").symlink_to(outside)
    elif kind == "out_dir_symlink":
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        out_dir.symlink_to(outside)
    elif kind == "silence_shape":
        torch.save(torch.zeros(case["shape"]), target)
    elif kind == "random":
        rng = random.Random(case["seed"])
        name = rng.choice(["config.json", "model.safetensors", "silence_latent.pt"])
        target = dit / name
        data = bytearray(target.read_bytes())
        how = rng.choice(["truncate", "flip", "flip_head", "zero_head", "append"])
        if how == "truncate":
            data = data[:rng.randrange(len(data))]
        elif how in ("flip", "flip_head"):
            span = min(len(data), 256) if how == "flip_head" else len(data)
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(span)] ^= 1 << rng.randrange(8)
        elif how == "zero_head":
            data[:16] = bytes(min(16, len(data)))
        else:
            data += bytes(rng.randrange(1, 4096))
        target.write_bytes(bytes(data))
        case["did"] = f"{how} {name}"
    else:
        raise ValueError(kind)


def main(work: Path, cases: list[dict]) -> None:
    torch.set_num_threads(1)
    pristine = save_original(tiny_pipeline(rate="test"), work / "pristine") / DIT
    for i, case in enumerate(cases):
        root = work / f"case{i}"
        dit = root / "dit"
        shutil.copytree(pristine, dit)
        outside = root / "outside"
        outside.mkdir()
        out_dir = root / "cache" / "converted"
        damage(dit, case, outside, out_dir)
        started = time.monotonic()
        try:
            convert(dit, out_dir, hint="Run setup again.")
            outcome, message = "ok", ""
        except Exception as exc:  # the parent judges which classes are allowed
            outcome, message = type(exc).__name__, str(exc)[:300]
        print(json.dumps({**case, "outcome": outcome, "message": message,
                          "seconds": round(time.monotonic() - started, 2),
                          "out_is_dir": out_dir.is_dir() and not out_dir.is_symlink(),
                          "outside": sorted(p.name for p in outside.iterdir()),
                          "maxrss_mib": peak_rss_mib()}), flush=True)


def peak_rss_mib() -> int:
    """This process's peak RSS (VmHWM: unlike ru_maxrss, not inherited from the parent across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


if __name__ == "__main__":
    main(Path(sys.argv[1]), json.loads(sys.argv[2]))
