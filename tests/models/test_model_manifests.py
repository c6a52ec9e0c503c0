"""Which files each backend needs, and how the store reads a model's state from disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakehub import FakeRepo
from model_helpers import FAST_RETRY

from lofi_daemon.errors import InvalidParams
from lofi_daemon.models.manifest import ModelManifest, is_commit_hash
from lofi_daemon.models.manifests import ACE_STEP, MUSICGEN_REVISIONS, musicgen_manifest
from lofi_daemon.models.store import ModelStore


def test_ace_step_manifest_names_the_folders_the_official_loader_reads(acestep_fixture: Path):
    """The tiny fixture checkpoint was saved by the official ACE-Step classes in the layout
    their loader expects; every file we require is there, and we skip none of its files."""
    checkpoint = acestep_fixture / "checkpoint"
    on_disk = {str(p.relative_to(checkpoint)) for p in checkpoint.rglob("*") if p.is_file()}
    required = set(ACE_STEP.files)
    optional = {f for c in ACE_STEP.components for f in c.optional}
    assert required <= on_disk
    assert on_disk <= required | optional
    assert [c.name for c in ACE_STEP.components] == ["transformer", "text_encoder", "dcae", "vocoder"]


def test_ace_step_is_pinned_to_a_commit_with_a_size_and_sha256_for_every_required_file():
    assert is_commit_hash(ACE_STEP.revision)
    for path in ACE_STEP.files:
        spec = ACE_STEP.known_spec(path)
        assert spec is not None and spec.size and spec.size > 0, path
        assert spec.sha256 is not None and len(spec.sha256) == 64, path


def test_ace_step_size_is_known_before_any_download(tmp_path):
    store = ModelStore(tmp_path)
    expected = store.expected_size_bytes(ACE_STEP)
    assert expected == sum(ACE_STEP.known_spec(p).size for p in ACE_STEP.files)  # type: ignore[union-attr]
    assert 7.5e9 < expected < 8.5e9  # ~7.7 GiB, as the issue says
    assert store.status(ACE_STEP) == "not_installed"
    assert store.size_bytes(ACE_STEP) == 0


@pytest.mark.parametrize("model_id", sorted(MUSICGEN_REVISIONS))
def test_every_supported_musicgen_model_has_weights_config_and_processor(model_id):
    manifest = musicgen_manifest(model_id)
    assert manifest.repo_id == model_id and manifest.backend == "musicgen"
    model = manifest.component("model")
    assert "config.json" in model.files and model.sharded == ("model.safetensors",)
    processor = manifest.component("processor")
    assert "preprocessor_config.json" in processor.files and "tokenizer_config.json" in processor.files


def test_an_unknown_musicgen_model_is_refused_with_the_choices():
    with pytest.raises(InvalidParams) as err:
        musicgen_manifest("facebook/musicgen-huge")
    assert "facebook/musicgen-small" in err.value.hint


@pytest.mark.parametrize("manifest", [ACE_STEP, musicgen_manifest("facebook/musicgen-large")])
def test_a_manifest_survives_the_trip_to_the_worker_process(manifest):
    assert ModelManifest.from_dict(json.loads(json.dumps(manifest.to_dict()))) == manifest


def test_musicgen_setup_takes_the_sharded_weights_and_tokenizer_files_the_repo_has(hub, tmp_path):
    index = {"metadata": {"total_size": 9}, "weight_map": {"a": "model-00001-of-00002.safetensors",
                                                          "b": "model-00002-of-00002.safetensors"}}
    files = {
        "config.json": b"{}",
        "generation_config.json": b"{}",
        "preprocessor_config.json": b"{}",
        "tokenizer_config.json": b"{}",
        "special_tokens_map.json": b"{}",
        "spiece.model": b"s" * 2000,
        "model.safetensors.index.json": json.dumps(index).encode(),
        "model-00001-of-00002.safetensors": b"1" * 5000,
        "model-00002-of-00002.safetensors": b"2" * 4000,
        "pytorch_model.bin": b"pickle we never load",
        "compression_state_dict.bin": b"audiocraft only",
    }
    repo = hub.add_repo(FakeRepo("facebook/musicgen-medium", files))
    manifest = musicgen_manifest("facebook/musicgen-medium")
    assert manifest.revision == "main"
    store = ModelStore(tmp_path)
    record = store.download(manifest, retry=FAST_RETRY)
    assert record.commit == repo.commit
    taken = {f.path: f.component for f in record.files}
    assert set(taken) == set(files) - {"pytorch_model.bin", "compression_state_dict.bin"}
    assert taken["spiece.model"] == "processor" and taken["model-00002-of-00002.safetensors"] == "model"
    assert store.is_installed(manifest)


def test_a_folder_with_files_but_no_record_is_partial_not_installed(tmp_path):
    store = ModelStore(tmp_path)
    snap = store.snapshot_dir(ACE_STEP)
    (snap / "umt5-base").mkdir(parents=True)
    (snap / "umt5-base" / "config.json").write_text("{}")
    assert store.status(ACE_STEP) == "partial"
    assert not store.is_installed(ACE_STEP)


def test_an_unresolved_branch_has_nothing_installed(tmp_path):
    store = ModelStore(tmp_path)
    manifest = musicgen_manifest("facebook/musicgen-large")
    assert store.commit(manifest) is None
    assert store.status(manifest) == "not_installed"
    assert store.expected_size_bytes(manifest) is None
