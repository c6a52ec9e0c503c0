"""Device and dtype choice, seeded generators and memory checks.

Rule (DESIGN.md): CUDA (bf16 where supported) > Apple MPS (always fp32) > CPU (fp32),
overridable. Everything that needs torch imports it inside the function, so importing
this module at daemon start costs nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from .errors import ModelLoadFailed

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")
DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class DevicePlan:
    """What the user asked for; ``resolve()`` turns it into a concrete device and dtype."""

    preference: str = "auto"  # auto | cuda | mps | cpu
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    low_vram: str = "auto"  # auto | on | off: keep only the running component on the GPU
    threads: int | str = "auto"  # CPU compute threads: auto (usable physical cores) or a count


@dataclass(frozen=True)
class ResolvedDevice:
    device: str  # "cuda", "mps" or "cpu"
    dtype: "torch.dtype"
    low_vram: bool

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    def describe(self) -> dict[str, Any]:
        import torch

        return {
            "device": self.device,
            "dtype": self.dtype_name,
            "low_vram": self.low_vram,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        }


def resolve(plan: DevicePlan, *, vram_needed_bytes: int = 0) -> ResolvedDevice:
    """Pick the device and dtype for ``plan`` on this machine."""
    import torch

    device = plan.preference
    if device == "auto":
        if torch.cuda.is_available():
            device = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadFailed("CUDA was requested but no CUDA device is available",
                              hint="Set device = 'auto' or 'cpu' in the lofi config.")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelLoadFailed("MPS was requested but is not available",
                              hint="Set device = 'auto' or 'cpu' in the lofi config.")

    if device == "mps":
        dtype = torch.float32  # MPS always runs in float32 (bf16 kernels are incomplete there)
    elif plan.dtype != "auto":
        dtype = getattr(torch, plan.dtype)
    elif device == "cuda" and torch.cuda.is_bf16_supported():
        dtype = torch.bfloat16
    elif device == "cuda":
        dtype = torch.float16
    else:
        dtype = torch.float32

    apply_cpu_threads(plan.threads)

    if plan.low_vram == "on":
        low_vram = device == "cuda"
    elif plan.low_vram == "off" or device != "cuda":
        low_vram = False
    else:
        low_vram = vram_needed_bytes > 0 and vram_needed_bytes > free_memory_bytes("cuda")
    return ResolvedDevice(device=device, dtype=dtype, low_vram=low_vram)


def valid_threads(value: Any) -> bool:
    return value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1)


def usable_physical_cores(cpus: "set[int] | None" = None, sys_cpu: str = "/sys/devices/system/cpu") -> int:
    """Physical cores among the CPUs this process may run on (SMT siblings count once).

    ``cpus`` defaults to the process's affinity mask (a container or ``taskset`` limit);
    where the topology files are missing every allowed CPU counts as a core.
    """
    if cpus is None:
        try:
            cpus = set(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cpus = set(range(os.cpu_count() or 1))
    cores = set()
    for cpu in cpus:
        try:
            with open(f"{sys_cpu}/cpu{cpu}/topology/physical_package_id") as f:
                package = f.read().strip()
            with open(f"{sys_cpu}/cpu{cpu}/topology/core_id") as f:
                core = f.read().strip()
            cores.add((package, core))
        except OSError:
            cores.add(("cpu", str(cpu)))
    return max(1, len(cores))


def cpu_thread_count(setting: int | str = "auto") -> int:
    """Intra-op threads for ``setting``: a count as given, "auto" = usable physical cores.

    torch's default is every logical CPU, which on an SMT machine runs two compute threads
    per core (slower for these GEMM/conv-bound models) and leaves the editor no headroom.
    """
    if setting == "auto" or not valid_threads(setting):
        return usable_physical_cores()
    return int(setting)


def apply_cpu_threads(setting: int | str = "auto") -> int:
    """Set torch's intra-op threads (and one inter-op thread: the models run one op at a time)."""
    import torch

    count = cpu_thread_count(setting)
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # only settable before the first parallel op; then it already has its value
    return count


MEMORY_LIMIT_ENV = "LOFI_MEMORY_LIMIT_BYTES"


def memory_limit_bytes(env: "dict[str, str] | None" = None) -> int | None:
    """``LOFI_MEMORY_LIMIT_BYTES``: a cap on what the memory check may count as available
    (a machine shared with other work, or a test that needs a small machine); None: no cap."""
    raw = (os.environ if env is None else env).get(MEMORY_LIMIT_ENV, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        return None  # settings.py logs the bad value at start-up
    return value if value >= 0 else None


def free_memory_bytes(device: str) -> int:
    """Memory a new model could use on ``device`` right now (never swap: MemAvailable)."""
    if device == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info()
        available = int(free)
    else:
        available = available_ram_bytes()
    limit = memory_limit_bytes()
    return available if limit is None else min(available, limit)


def available_ram_bytes() -> int:
    """MemAvailable from /proc/meminfo, or physical memory where that does not exist."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def check_memory(required_bytes: int, device: str, what: str, *, choices: "Sequence[str]" = ()) -> None:
    """Raise MODEL_LOAD_FAILED with both numbers when ``required_bytes`` will not fit.

    ``choices`` are the smaller ways the caller knows of (another variant, another
    placement); they go into the hint and the error's ``choices`` so a client can list them.
    Loading anyway would push the machine into swap, which stalls the editor beside it.
    """
    available = free_memory_bytes(device)
    if required_bytes > available:
        hint = "Close other programs"
        hint += (", or: " + "; ".join(choices) + ".") if choices else "."
        raise ModelLoadFailed(
            f"not enough memory to load {what} on {device}: needs {required_bytes / 2**30:.2f} GiB, "
            f"{available / 2**30:.2f} GiB available",
            hint=hint,
            required_bytes=int(required_bytes),
            available_bytes=int(available),
            device=device,
            choices=list(choices),
        )


def generator(seed: int, device: str) -> "torch.Generator":
    """An explicit generator: the same seed on the same device draws the same numbers."""
    import torch

    return torch.Generator(device=device).manual_seed(int(seed))


def empty_cache(device: str | None = None) -> None:
    """Drop dead tensors and hand cached accelerator memory back (``None``: every device).

    Used after unload and after a cancelled or failed job; never imports torch just to clean up.
    """
    import gc
    import sys

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is None:
        return
    if device in (None, "cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()
    if device in (None, "mps") and getattr(torch.backends, "mps", None) is not None \
            and torch.backends.mps.is_available():
        torch.mps.empty_cache()
