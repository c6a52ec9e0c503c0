"""How many CPU threads the models compute with: usable physical cores, or the user's count."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from lofi_daemon.device import DevicePlan, cpu_thread_count, resolve, usable_physical_cores
from lofi_daemon.settings import Settings


def _topology(root: Path, cpus: dict[int, tuple[int, int]]) -> str:
    """A fake /sys/devices/system/cpu: cpu id -> (package, core)."""
    for cpu, (package, core) in cpus.items():
        topo = root / f"cpu{cpu}" / "topology"
        topo.mkdir(parents=True)
        (topo / "physical_package_id").write_text(f"{package}\n")
        (topo / "core_id").write_text(f"{core}\n")
    return str(root)


@pytest.fixture
def threads_restored():
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


def test_smt_siblings_count_as_one_core(tmp_path):
    # 2 packages x 2 cores x 2 hyperthreads = 8 logical CPUs, 4 physical cores.
    cpus = {cpu: (cpu // 4, (cpu // 2) % 2) for cpu in range(8)}
    sys_cpu = _topology(tmp_path, cpus)
    assert usable_physical_cores(set(cpus), sys_cpu) == 4


def test_only_the_cpus_this_process_may_use_count(tmp_path):
    cpus = {cpu: (0, cpu // 2) for cpu in range(8)}  # 4 cores, 2 threads each
    sys_cpu = _topology(tmp_path, cpus)
    assert usable_physical_cores({0, 1, 2}, sys_cpu) == 2  # cores 0 and 1 (cpu 2 is core 1)


def test_without_topology_files_every_allowed_cpu_is_a_core(tmp_path):
    assert usable_physical_cores({0, 1, 2}, str(tmp_path)) == 3


def test_auto_never_exceeds_the_cpus_this_process_may_use():
    assert 1 <= cpu_thread_count("auto") <= len(os.sched_getaffinity(0))


def test_resolving_a_device_applies_the_thread_setting(threads_restored):
    resolve(DevicePlan(preference="cpu", threads=1))
    assert torch.get_num_threads() == 1
    resolve(DevicePlan(preference="cpu", threads="auto"))
    assert torch.get_num_threads() == usable_physical_cores()


def test_the_cpu_threads_preference_reaches_the_device_plan(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"cpu_threads": 1}), encoding="utf-8")
    settings = Settings.load({"LOFI_CACHE_DIR": str(tmp_path), "LOFI_CONFIG_DIR": str(tmp_path)})
    assert settings.device_plan.threads == 1


@pytest.mark.parametrize("bad", [0, -2, "many", 1.5, True])
def test_an_invalid_cpu_threads_preference_falls_back_to_auto(tmp_path, bad):
    (tmp_path / "config.json").write_text(json.dumps({"cpu_threads": bad}), encoding="utf-8")
    settings = Settings.load({"LOFI_CACHE_DIR": str(tmp_path), "LOFI_CONFIG_DIR": str(tmp_path)})
    assert settings.device_plan.threads == "auto"
