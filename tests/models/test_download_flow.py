"""Setup against a fake hub on 127.0.0.1: what a user sees through a whole install."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from model_helpers import FAST_RETRY, REPO_ID, sha256_of, tiny_files, tiny_manifest
from fakehub import FakeHub, FakeRepo

from lofi_daemon.cancel import CancelToken
from lofi_daemon.errors import BackendNotInstalled, DownloadFailed, JobCancelled, ModelLoadFailed
from lofi_daemon.models.progress import DownloadProgress
from lofi_daemon.models.store import ModelStore

CHUNK = 16 * 1024


def download(store: ModelStore, manifest, reports: list | None = None, **options):
    options.setdefault("retry", FAST_RETRY)
    options.setdefault("chunk_size", CHUNK)
    sink = reports.append if reports is not None else None
    return store.download(manifest, on_progress=sink, **options)


def body_gets(hub: FakeHub) -> list[str]:
    """Paths whose bytes were sent (plain files from the hub, LFS files from the CDN)."""
    return [r.path for r in hub.requests if r.method == "GET" and r.status in (200, 206)
            and (r.server == "cdn" or "/resolve/" in r.path)]


def test_full_download_reports_per_component_progress_that_adds_up(hub, repo, manifest, store):
    reports: list[DownloadProgress] = []
    record = download(store, manifest, reports)

    sizes = {path: len(data) for path, data in tiny_files().items() if path != "README.md"}
    total = sum(sizes.values())
    assert record.total_bytes == total
    assert {f.path for f in record.files} == set(sizes)  # README is in no component; spiece.model absent
    assert all(r.bytes_total == total and r.backend == "tiny" for r in reports)
    for r in reports:
        assert r.overall_percent == round(100 * r.bytes_downloaded / total, 2)
    done = [r.bytes_downloaded for r in reports]
    assert done == sorted(done) and done[0] == 0 and done[-1] == total
    # Components come in manifest order and each one ends at 100 %.
    order = [r.component for r in reports]
    assert [c for i, c in enumerate(order) if i == 0 or order[i - 1] != c] == ["encoder", "decoder", "tokenizer"]
    for name in ("encoder", "decoder", "tokenizer"):
        assert [r for r in reports if r.component == name][-1].component_percent == 100.0
    # At least every whole percent (one chunk of slack): a progress bar never stalls.
    step_slack = 100 * CHUNK / total
    for before, after in zip(reports, reports[1:]):
        assert after.overall_percent - before.overall_percent <= 1.0 + step_slack
    # Throttled: about one report per percent (plus each component's start and end).
    assert len(reports) <= 100 + 2 * 3 + 2
    assert len(reports) < total / CHUNK
    assert store.status(manifest) == "installed"
    snap = store.snapshot_dir(manifest)
    for path, data in tiny_files().items():
        if path in sizes:
            assert (snap / path).read_bytes() == data
    assert not store.partial_files(manifest)


def test_status_goes_not_installed_partial_installed_and_back_after_damage(hub, repo, manifest, store):
    assert store.status(manifest) == "not_installed"
    assert store.expected_size_bytes(manifest) is None  # nothing pinned, nothing recorded yet

    hub.fail(status=500, times=100, match="model.safetensors")
    with pytest.raises(DownloadFailed):
        download(store, manifest)
    assert store.status(manifest) == "partial"  # config.json landed, weights did not
    assert not store.is_installed(manifest)

    hub.clear_faults()
    download(store, manifest)
    assert store.status(manifest) == "installed"
    assert store.size_bytes(manifest) == store.expected_size_bytes(manifest)

    (store.snapshot_dir(manifest) / "decoder/config.json").unlink()
    assert store.status(manifest) == "partial"
    download(store, manifest)
    assert store.status(manifest) == "installed"


def test_a_same_size_corrupt_byte_is_found_at_verify_and_at_load_and_only_that_file_is_fetched_again(
    hub, repo, manifest, store
):
    download(store, manifest)
    weights = store.snapshot_dir(manifest) / "decoder/diffusion_pytorch_model.safetensors"
    good_sha = sha256_of(weights)
    raw = bytearray(weights.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    weights.write_bytes(bytes(raw))

    bad = store.verify(manifest, full=True)
    assert [(b.path, b.reason) for b in bad] == [("decoder/diffusion_pytorch_model.safetensors", "checksum")]
    assert store.status(manifest) == "partial"  # the check remembered the damage

    with pytest.raises(ModelLoadFailed) as err:
        store.verify_for_load(manifest)
    assert "decoder/diffusion_pytorch_model.safetensors is corrupt" in err.value.message
    assert "run :LofiSetup tiny again" in err.value.message
    assert err.value.data["file"] == "decoder/diffusion_pytorch_model.safetensors"
    assert "LofiSetup tiny" in err.value.hint

    hub.requests.clear()
    download(store, manifest)
    fetched = body_gets(hub)
    assert len(fetched) == 1 and fetched[0].endswith(sha256_hex_of(repo, "decoder/diffusion_pytorch_model.safetensors"))
    assert sha256_of(weights) == good_sha
    assert store.verify_for_load(manifest) == store.snapshot_dir(manifest)
    assert store.status(manifest) == "installed"


def test_load_check_rehashes_a_changed_file_without_a_full_verify(hub, repo, manifest, store):
    download(store, manifest)
    config = store.snapshot_dir(manifest) / "encoder/config.json"
    config.write_bytes(b'{"d_model": 9}')  # same size, new content, new mtime
    with pytest.raises(ModelLoadFailed, match="encoder/config.json is corrupt"):
        store.verify_for_load(manifest)


def test_a_corruption_that_kept_size_and_mtime_needs_the_full_verify(hub, repo, manifest, store):
    """The load check trusts files whose size and mtime match their last good check;
    setup's full verify re-hashes everything."""
    download(store, manifest)
    config = store.snapshot_dir(manifest) / "encoder/config.json"
    st = config.stat()
    config.write_bytes(b'{"d_model": 9}')
    os.utime(config, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert store.verify(manifest, full=False) == []
    assert [b.path for b in store.verify(manifest, full=True)] == ["encoder/config.json"]


def test_load_before_setup_says_not_installed_with_the_setup_command(manifest, store):
    with pytest.raises(BackendNotInstalled) as err:
        store.verify_for_load(manifest)
    assert ":LofiSetup tiny" in err.value.hint


def test_rerun_of_a_complete_install_downloads_nothing(hub, repo, manifest, store):
    download(store, manifest)
    hub.requests.clear()
    reports: list[DownloadProgress] = []
    download(store, manifest, reports)
    assert body_gets(hub) == []
    assert reports[0].bytes_downloaded == reports[0].bytes_total  # everything counted as present


def test_disk_space_is_checked_before_any_byte_is_written(hub, repo, manifest, store):
    needed = sum(len(d) for p, d in tiny_files().items() if p != "README.md")
    with pytest.raises(DownloadFailed) as err:
        download(store, manifest, disk_free=lambda path: needed - 1)
    assert err.value.data["needed_bytes"] == needed
    assert err.value.data["free_bytes"] == needed - 1
    assert "not enough disk space" in err.value.message
    assert "LOFI_CACHE_DIR" in err.value.hint
    assert body_gets(hub) == []
    assert store.status(manifest) == "partial"  # a record exists, nothing installed
    assert not store.is_installed(manifest)

    download(store, manifest, disk_free=lambda path: needed)  # exactly enough is enough
    assert store.is_installed(manifest)


def test_a_server_that_keeps_failing_ends_in_download_failed_with_a_hint(hub, repo, manifest, store):
    hub.fail(status=503, times=1000, match="/lfs/")
    with pytest.raises(DownloadFailed) as err:
        download(store, manifest)
    assert "encoder/model.safetensors" in err.value.message
    assert "network" in err.value.hint and "continues where it stopped" in err.value.hint
    assert err.value.data["attempts"] == FAST_RETRY.attempts
    assert not store.is_installed(manifest)


def test_a_few_server_errors_are_retried_and_the_install_completes(hub, repo, manifest, store):
    hub.fail(status=500, times=2, match="/lfs/")
    hub.fail(status=502, times=1, match="paths-info")
    download(store, manifest)
    assert store.is_installed(manifest)


def test_a_connection_cut_mid_file_is_continued_with_a_range_request(hub, repo, manifest, store):
    hub.drop_after(200_000, times=1, match=sha256_hex_of(repo, "encoder/model.safetensors"))
    download(store, manifest)
    ranges = hub.range_requests(sha256_hex_of(repo, "encoder/model.safetensors"))
    assert ranges[0] is None
    assert ranges[1].startswith("bytes=") and int(ranges[1][6:-1]) >= CHUNK  # continued, not restarted
    assert len(ranges) == 2
    assert sha256_of(store.snapshot_dir(manifest) / "encoder/model.safetensors") == sha256_hex_of(
        repo, "encoder/model.safetensors"
    )


def test_a_connection_that_always_drops_before_any_byte_fails_with_a_hint(hub, repo, manifest, store):
    hub.drop_after(0, times=1000, match="/lfs/")
    with pytest.raises(DownloadFailed) as err:
        download(store, manifest)
    assert "network" in err.value.hint
    assert store.status(manifest) == "partial"


def test_a_server_that_ignores_range_restarts_the_file_and_still_verifies(hub, repo, manifest, store):
    target = "encoder/model.safetensors"
    snap_partial = store.snapshot_dir(manifest) / (target + ".incomplete")
    snap_partial.parent.mkdir(parents=True)
    snap_partial.write_bytes(tiny_files()[target][:100_000])
    hub.ignore_range = True
    reports: list[DownloadProgress] = []
    download(store, manifest, reports)
    assert hub.range_requests(sha256_hex_of(repo, target)) == ["bytes=100000-"]
    assert sha256_of(store.snapshot_dir(manifest) / target) == sha256_hex_of(repo, target)
    assert reports[-1].bytes_downloaded == reports[-1].bytes_total  # the restart took back its bytes


def test_a_partial_file_with_wrong_bytes_fails_its_checksum_then_downloads_cleanly(hub, repo, manifest, store):
    target = "decoder/diffusion_pytorch_model.safetensors"
    partial = store.snapshot_dir(manifest) / (target + ".incomplete")
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"\0" * 50_000)  # not a prefix of the real file
    download(store, manifest)
    assert hub.range_requests(sha256_hex_of(repo, target)) == ["bytes=50000-", None]
    assert sha256_of(store.snapshot_dir(manifest) / target) == sha256_hex_of(repo, target)


def test_cancel_stops_within_one_chunk_and_the_next_run_continues(hub, repo, manifest, store):
    cancel = CancelToken()
    weights_at_cancel: list[int] = []
    config_size = len(tiny_files()["encoder/config.json"])

    def on_progress(p: DownloadProgress) -> None:
        if p.bytes_downloaded >= 400_000 and not cancel.cancelled:
            weights_at_cancel.append(p.bytes_downloaded - config_size)
            cancel.cancel()

    with pytest.raises(JobCancelled):
        store.download(manifest, on_progress=on_progress, cancel=cancel, retry=FAST_RETRY, chunk_size=CHUNK)
    partial = store.snapshot_dir(manifest) / "encoder/model.safetensors.incomplete"
    kept = partial.stat().st_size
    assert weights_at_cancel[0] <= kept <= weights_at_cancel[0] + CHUNK  # at most one more chunk
    assert store.status(manifest) == "partial"

    download(store, manifest)
    assert hub.range_requests(sha256_hex_of(repo, "encoder/model.safetensors"))[-1] == f"bytes={kept}-"
    assert store.is_installed(manifest)


def test_an_unknown_repo_fails_at_once_with_a_hint(hub, store):
    manifest = tiny_manifest("main", repo_id="lofi-test/does-not-exist")
    with pytest.raises(DownloadFailed) as err:
        download(store, manifest)
    assert "not found" in err.value.message
    assert "model name" in err.value.hint
    assert len(hub.requests) <= 2  # no retry loop on a 404


def test_a_branch_is_resolved_to_its_commit_and_recorded(hub, repo, store):
    manifest = tiny_manifest("main")
    record = download(store, manifest)
    assert record.commit == repo.commit
    assert (store.repo_dir(manifest) / "refs" / "main").read_text() == repo.commit
    assert store.snapshot_dir(manifest).name == repo.commit
    assert store.is_installed(manifest)


def test_hub_files_that_differ_from_the_pinned_ones_are_refused(hub, repo, manifest, store):
    from lofi_daemon.models.manifest import FileSpec

    pinned = tiny_manifest(repo.commit, known=(FileSpec("encoder/model.safetensors", 1_200_000, "ab" * 32),))
    with pytest.raises(DownloadFailed, match="not the pinned file"):
        download(store, pinned)
    assert body_gets(hub) == []


def test_orphaned_partial_files_are_removed_but_ours_are_continued(hub, repo, manifest, store):
    repo_dir = store.repo_dir(manifest)
    hub_orphan = repo_dir / "blobs" / "0123abcd.incomplete"  # huggingface_hub's per-process name
    old_commit = repo_dir / "snapshots" / ("f" * 40) / "encoder" / "model.safetensors.incomplete"
    ours = store.snapshot_dir(manifest) / "encoder" / "model.safetensors.incomplete"
    for p, data in ((hub_orphan, b"x" * 10), (old_commit, b"y" * 10), (ours, tiny_files()["encoder/model.safetensors"][:70_000])):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    download(store, manifest)
    assert not hub_orphan.exists() and not old_commit.exists()
    assert hub.range_requests(sha256_hex_of(repo, "encoder/model.safetensors")) == ["bytes=70000-"]


def test_sharded_weights_are_read_from_their_index(hub, store):
    import json

    from lofi_daemon.models.manifest import Component, ModelManifest

    shards = {"model-00001-of-00002.safetensors": b"a" * 70_000, "model-00002-of-00002.safetensors": b"b" * 50_000}
    index = {"metadata": {}, "weight_map": {"x.weight": "model-00001-of-00002.safetensors",
                                            "y.weight": "model-00002-of-00002.safetensors",
                                            "z.weight": "model-00001-of-00002.safetensors"}}
    files = {"config.json": b"{}", "model.safetensors.index.json": json.dumps(index).encode(), **shards,
             "pytorch_model.bin": b"never fetched"}
    sharded = hub.add_repo(FakeRepo("lofi-test/sharded", files))
    manifest = ModelManifest("big", sharded.repo_id, sharded.commit,
                             (Component("model", ("config.json",), sharded=("model.safetensors",)),))
    record = download(store, manifest)
    assert sorted(f.path for f in record.files) == sorted(["config.json", "model.safetensors.index.json", *shards])
    assert store.is_installed(manifest)
    assert store.verify(manifest, full=True) == []


def test_a_single_weights_file_wins_over_an_index(hub, store):
    from lofi_daemon.models.manifest import Component, ModelManifest

    single = hub.add_repo(FakeRepo("lofi-test/single", {"model.safetensors": b"w" * 1000, "config.json": b"{}"}))
    manifest = ModelManifest("one", single.repo_id, "main",
                             (Component("model", ("config.json",), sharded=("model.safetensors",)),))
    record = download(store, manifest)
    assert sorted(f.path for f in record.files) == ["config.json", "model.safetensors"]


def test_a_missing_required_file_is_a_clear_error(hub, repo, store):
    from lofi_daemon.models.manifest import Component

    manifest = tiny_manifest(repo.commit, components=(Component("encoder", ("encoder/missing.json",)),))
    with pytest.raises(DownloadFailed, match="has no file encoder/missing.json"):
        download(store, manifest)


def test_two_downloads_of_one_repo_never_run_at_once(hub, repo, manifest, store):
    from lofi_daemon.errors import DownloadInProgress
    from lofi_daemon.models.lock import RepoLock

    with RepoLock(store.lock_path(manifest), "tiny"):
        with pytest.raises(DownloadInProgress):
            download(store, manifest)
    download(store, manifest)  # the lock is gone with its holder
    assert store.is_installed(manifest)


def sha256_hex_of(repo: FakeRepo, path: str) -> str:
    import hashlib

    return hashlib.sha256(repo.files[path]).hexdigest()


def test_the_record_lives_outside_the_snapshot(hub, repo, manifest, store):
    download(store, manifest)
    snap = store.snapshot_dir(manifest)
    on_disk = sorted(str(p.relative_to(snap)) for p in snap.rglob("*") if p.is_file())
    assert on_disk == sorted(p for p in tiny_files() if p != "README.md")
    assert store.record_path(manifest).is_file()
    assert Path(store.record_path(manifest)).parent.name == "lofi"
    assert REPO_ID.replace("/", "--") in str(store.repo_dir(manifest))
