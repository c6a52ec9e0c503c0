"""ACE-Step v1's memory check (a real check under LOFI_MEMORY_LIMIT_BYTES) and what it holds."""

from __future__ import annotations

import pytest

from lofi_daemon.device import DevicePlan
from lofi_daemon.errors import ModelLoadFailed

CPU = DevicePlan(preference="cpu")


def _backend(tmp_path, monkeypatch, checkpoint):
    from lofi_daemon.backends.ace_step.backend import AceStepBackend
    from lofi_daemon.models.store import ModelStore
    from lofi_daemon.settings import Settings

    monkeypatch.setenv("LOFI_ACESTEP_DIR", str(checkpoint))
    settings = Settings(cache_dir=tmp_path / "cache", config_dir=tmp_path / "config")
    return AceStepBackend(settings, ModelStore(settings.models_dir))


def test_a_load_over_the_memory_limit_names_both_numbers_and_the_other_backends(tmp_path, monkeypatch,
                                                                                acestep_checkpoint):
    monkeypatch.setenv("LOFI_MEMORY_LIMIT_BYTES", str(2**30))
    backend = _backend(tmp_path, monkeypatch, acestep_checkpoint)
    with pytest.raises(ModelLoadFailed) as err:
        backend.load(CPU)
    facts = err.value.facts
    assert facts["available_bytes"] == 2**30 < facts["required_bytes"]
    assert "needs 1.5" in err.value.message and "1.00 GiB available" in err.value.message
    assert len(facts["choices"]) == 1 and "ace_step_15" in facts["choices"][0]  # no low-VRAM on a CPU
    assert "ace_step_15" in err.value.hint and not backend.loaded


def test_a_loaded_pipeline_reports_its_weight_bytes_until_it_is_unloaded(tmp_path, monkeypatch, acestep_checkpoint):
    backend = _backend(tmp_path, monkeypatch, acestep_checkpoint)
    backend.load(CPU)
    held = backend.held_memory()
    import torch

    needs = backend._memory_needs(backend._verified_root(), CPU)
    counted = needs.weights(torch.float32)  # what the memory check counted from the headers, as float32
    assert held["device"] == "cpu" and held["low_vram"] is False
    # The check never counts less than the load holds (it also counts a few tensors the
    # loader leaves out), and the loaded weights are most of it.
    assert 0.8 * counted <= held["weight_bytes"] <= counted, (held, counted)
    backend.unload()
    assert backend.held_memory() is None
