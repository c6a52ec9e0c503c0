"""Progress pacing (at least every 1 % or 0.5 s, never a flood) and the hub's checksums."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from lofi_daemon.models.progress import DownloadProgress, ProgressTracker
from lofi_daemon.models.verify import ContentHash, Expected, check_file


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def tracker(reports: list[DownloadProgress], clock: Clock, totals: dict[str, int]) -> ProgressTracker:
    return ProgressTracker("ace_step", totals, reports.append, clock=clock)


def test_a_slow_download_still_reports_every_half_second():
    reports: list[DownloadProgress] = []
    clock = Clock()
    t = tracker(reports, clock, {"transformer": 1_000_000})
    t.start_component("transformer")
    for _ in range(10):
        clock.now += 0.2
        t.add(100)  # 0.01 % per step: only time moves the report
    assert len(reports) == 1 + 3  # start, then at 0.6 s, 1.2 s, 1.8 s
    assert [r.bytes_downloaded for r in reports[1:]] == [300, 600, 900]


def test_a_fast_download_reports_once_per_percent_not_per_chunk():
    reports: list[DownloadProgress] = []
    clock = Clock()
    t = tracker(reports, clock, {"transformer": 1_000_000})
    t.start_component("transformer")
    for _ in range(1000):
        t.add(1000)  # 0.1 % per chunk, no time passing
    t.finish_component()
    percents = [r.overall_percent for r in reports]
    assert percents[0] == 0.0 and percents[-1] == 100.0
    assert len(reports) == 101
    assert all(0.99 <= b - a <= 1.01 for a, b in zip(percents, percents[1:]))


def test_each_component_reports_its_start_and_end_and_its_own_percent():
    reports: list[DownloadProgress] = []
    clock = Clock()
    t = tracker(reports, clock, {"text_encoder": 300, "dcae": 100})
    t.start_component("text_encoder")
    t.add(300)
    t.finish_component()
    t.start_component("dcae")
    t.add(50)
    t.add(50)
    t.finish_component()
    by_component = [(r.component, r.component_percent, r.overall_percent) for r in reports]
    assert by_component == [
        ("text_encoder", 0.0, 0.0),
        ("text_encoder", 100.0, 75.0),
        ("dcae", 0.0, 75.0),
        ("dcae", 50.0, 87.5),
        ("dcae", 100.0, 100.0),
    ]


def test_bytes_already_on_disk_count_from_the_first_report():
    reports: list[DownloadProgress] = []
    t = tracker(reports, Clock(), {"transformer": 1000, "vocoder": 1000})
    t.done["transformer"] = 400  # a partial file kept from a killed run
    t.start_component("transformer")
    assert reports[0].bytes_downloaded == 400 and reports[0].component_percent == 40.0


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git CLI")
def test_the_plain_file_checksum_is_gits_blob_id(tmp_path: Path):
    f = tmp_path / "config.json"
    f.write_bytes(b'{"_class_name": "AutoencoderDC"}\n')
    git_id = subprocess.run(["git", "hash-object", str(f)], capture_output=True, text=True, check=True).stdout.strip()
    assert check_file(f, "config.json", Expected(f.stat().st_size, git_oid=git_id)) is None
    bad = check_file(f, "config.json", Expected(f.stat().st_size, git_oid="0" * 40))
    assert bad is not None and bad.reason == "checksum"


def test_a_resumed_hash_equals_the_hash_of_the_whole_file(tmp_path: Path):
    data = bytes(range(256)) * 1000
    f = tmp_path / "w.safetensors"
    f.write_bytes(data[:100_000])  # what a killed run left
    h = ContentHash(Expected(len(data), sha256=hashlib.sha256(data).hexdigest()))
    h.catch_up(f)  # the kept prefix, read back once
    h.update(data[100_000:])  # the rest, as it streams in
    assert h.count == len(data) and h.mismatch() is None


def test_size_is_checked_before_any_hashing(tmp_path: Path):
    f = tmp_path / "w.safetensors"
    f.write_bytes(b"x" * 10)
    bad = check_file(f, "w.safetensors", Expected(11, sha256="0" * 64))
    assert bad is not None and bad.reason == "size"
    assert check_file(tmp_path / "gone", "gone", Expected(1)).reason == "missing"  # type: ignore[union-attr]
