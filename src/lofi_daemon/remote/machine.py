"""What this daemon tells a client about its machine: the GPUs, without importing torch.

The NVIDIA driver lists its GPUs under /proc/driver/nvidia/gpus/*/information ("Model: ...");
when torch is already loaded (a model ran) it is asked too, which also covers Apple's MPS.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..files import read_regular_file

NVIDIA_PROC = Path("/proc/driver/nvidia/gpus")


def gpu_names(nvidia_proc: Path = NVIDIA_PROC, *, ask_torch: bool = True) -> list[str]:
    names: list[str] = []
    try:
        folders = sorted(nvidia_proc.iterdir())
    except OSError:
        folders = []
    for folder in folders:
        try:
            text = read_regular_file(folder / "information", 1 << 16).decode("utf-8", "replace")
        except (OSError, ValueError):
            continue
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model" and value.strip():
                names.append(value.strip())
    torch = sys.modules.get("torch") if ask_torch else None
    if not names and torch is not None:
        try:
            if torch.cuda.is_available():
                names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            elif torch.backends.mps.is_available():
                names = ["Apple MPS"]
        except Exception:  # a broken driver must not break daemon_info
            pass
    return names
