"""Device and dtype choice on this (CPU-only) machine."""

from __future__ import annotations

import pytest
import torch

from lofi_daemon.device import DevicePlan, check_memory, generator, resolve
from lofi_daemon.errors import ModelLoadFailed


def test_auto_picks_cpu_in_float32_without_an_accelerator():
    resolved = resolve(DevicePlan())
    assert resolved.device == "cpu" and resolved.dtype == torch.float32 and not resolved.low_vram


def test_an_explicit_dtype_is_honoured_on_cpu():
    assert resolve(DevicePlan(preference="cpu", dtype="bfloat16")).dtype == torch.bfloat16


def test_asking_for_a_missing_accelerator_is_a_load_error_with_a_hint():
    with pytest.raises(ModelLoadFailed) as err:
        resolve(DevicePlan(preference="cuda"))
    assert "device" in err.value.hint


def test_not_enough_memory_reports_both_numbers():
    with pytest.raises(ModelLoadFailed) as err:
        check_memory(1 << 60, "cpu", "a huge model")
    assert err.value.facts["required_bytes"] == 1 << 60
    assert 0 < err.value.facts["available_bytes"] < 1 << 60


def test_generators_from_the_same_seed_draw_the_same_noise():
    a = torch.randn(4, generator=generator(7, "cpu"))
    b = torch.randn(4, generator=generator(7, "cpu"))
    assert torch.equal(a, b)
