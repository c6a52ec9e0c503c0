"""ACE-Step 1.5's memory check and what a loaded model reports holding, on the tiny model.

The check is the real one: ``LOFI_MEMORY_LIMIT_BYTES`` caps what it may count as available,
as on a machine with less memory free.
"""

from __future__ import annotations

import pytest
from acestep15_helpers import make_backend

from lofi_daemon.backends.ace_step_15.components import weight_bytes
from lofi_daemon.device import DevicePlan
from lofi_daemon.errors import ModelLoadFailed

CPU = DevicePlan(preference="cpu")


def test_a_load_over_the_memory_limit_is_refused_naming_both_numbers_and_the_smaller_choices(
        installed_cache, monkeypatch):
    monkeypatch.setenv("LOFI_MEMORY_LIMIT_BYTES", str(512 * 2**20))
    b = make_backend(installed_cache)
    with pytest.raises(ModelLoadFailed) as err:
        b.load(CPU)
    facts = err.value.facts
    assert facts["available_bytes"] == 512 * 2**20 < facts["required_bytes"]
    assert "0.50 GiB available" in err.value.message
    assert facts["device"] == "cpu"
    # The default variant is already the smallest, and a CPU has no low-VRAM placement.
    assert facts["choices"] == ["backend = 'musicgen' (musicgen-small needs far less)"]
    assert "musicgen" in err.value.hint and not b.loaded and b.held_memory() is None


def test_an_xl_variant_names_the_2b_turbo_and_a_gpu_names_low_vram(installed_cache):
    from lofi_daemon.backends.ace_step_15.backend import _MemoryNeeds
    from lofi_daemon.device import ResolvedDevice
    import torch

    needs = _MemoryNeeds({"transformer": 1 << 30}, "xl-base")
    gpu = ResolvedDevice(device="cuda", dtype=torch.bfloat16, low_vram=False)
    assert needs.choices(gpu)[:2] == ["ace_step_15_variant = 'turbo' (2B, the smallest)",
                                      "low_vram = 'on' (one component on the GPU at a time)"]


def test_a_loaded_model_reports_its_weight_bytes_and_device_and_none_once_unloaded(installed_cache):
    b = make_backend(installed_cache)
    b.load(CPU)
    held = b.held_memory()
    # float32 on the CPU: what the safetensors headers describe (every storage counted once),
    # plus the few buffers a model builds at load rather than reads.
    on_disk = sum(weight_bytes(b._paths(), "").values())
    assert held == {"weight_bytes": held["weight_bytes"], "device": "cpu", "low_vram": False}
    assert on_disk <= held["weight_bytes"] <= on_disk * 1.01, (held, on_disk)
    b.unload()
    assert b.held_memory() is None
