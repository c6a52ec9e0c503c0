"""GPU names for daemon_info, read from the NVIDIA driver's /proc files (no torch import)."""

from __future__ import annotations

from lofi_daemon.remote.machine import gpu_names


def test_gpu_names_come_from_the_driver_information_files(tmp_path):
    for bus, model in (("0000:01:00.0", "NVIDIA GeForce RTX 4090"), ("0000:02:00.0", "NVIDIA H100 80GB HBM3")):
        (tmp_path / bus).mkdir()
        (tmp_path / bus / "information").write_text(f"Model: \t\t {model}\nIRQ:   \t 150\nGPU UUID: \t GPU-1234\n")
    (tmp_path / "0000:03:00.0").mkdir()  # a folder without its file is skipped
    assert gpu_names(tmp_path, ask_torch=False) == ["NVIDIA GeForce RTX 4090", "NVIDIA H100 80GB HBM3"]


def test_no_driver_means_no_gpu_names(tmp_path):
    assert gpu_names(tmp_path / "absent", ask_torch=False) == []
