"""How much memory the daemon holds: resident set sizes from /proc, bytes of loaded weights.

Cheap to import (no torch): ``daemon_info`` and ``get_status`` read it on every call, and
the idle unloader uses it to log what an unload gave back. ``release_freed_memory`` is what
makes an unload visible in RSS: Python's garbage collector for the model's cycles, then
glibc's ``malloc_trim`` for the freed heap pages the allocator would otherwise keep.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import sys
from typing import Any, Iterable


def rss_bytes(pid: int | None = None) -> int | None:
    """Resident set size of ``pid`` (default: this process) from /proc; None where unreadable."""
    path = f"/proc/{'self' if pid is None else int(pid)}/status"
    try:
        with open(path, "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024  # the kernel writes kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def tensor_bytes(objects: Iterable[Any]) -> int:
    """Bytes of the tensors (parameters and buffers) held by ``objects``, each storage once.

    ``objects`` are torch modules, or anything with ``.components`` (a diffusers pipeline);
    others are skipped. Tied weights share a storage, so they count once, as in memory.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return 0
    seen: set[tuple[str, int]] = set()
    total = 0
    pending = list(objects)
    while pending:
        obj = pending.pop()
        if isinstance(obj, torch.nn.Module):
            for tensor in [*obj.parameters(), *obj.buffers()]:
                storage = tensor.untyped_storage()
                key = (str(tensor.device), storage.data_ptr())
                if key not in seen:
                    seen.add(key)
                    total += storage.nbytes()
        elif isinstance(getattr(obj, "components", None), dict):
            pending.extend(obj.components.values())
    return total


def release_freed_memory() -> None:
    """Collect garbage and hand the allocator's free pages back to the system (glibc only)."""
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _malloc_trim() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim  # absent in musl: AttributeError
    except (OSError, AttributeError):
        return None


def describe(*, playback_pid: int | None, held: dict[str, Any] | None) -> dict[str, Any]:
    """The memory block of ``daemon_info`` / ``get_status`` (bytes; None where unknown)."""
    return {
        "daemon_rss_bytes": rss_bytes(),
        "playback_rss_bytes": rss_bytes(playback_pid) if playback_pid else None,
        "model_backend": held["backend"] if held else None,
        "model_weight_bytes": held["weight_bytes"] if held else 0,
        "device": held["device"] if held else None,
        "pid": os.getpid(),
    }
