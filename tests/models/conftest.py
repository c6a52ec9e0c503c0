"""Fixtures for the model-setup tests: a tiny repo on a fake hub, and a private store."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakehub import FakeHub, FakeRepo  # tests/ is on sys.path (rootdir conftest)
from model_helpers import REPO_ID, tiny_files, tiny_manifest

from lofi_daemon.models.manifest import ModelManifest
from lofi_daemon.models.store import ModelStore


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch):
    """A started fake hub serving the tiny repo; HF_ENDPOINT points at it."""
    import huggingface_hub.constants

    # huggingface_hub reads HF_HUB_OFFLINE once at import; another test may have imported
    # it in offline mode. Downloads are online by definition (the daemon runs them in a
    # worker process without the variable), so undo that for this test.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    fake = FakeHub([FakeRepo(REPO_ID, tiny_files())]).start()
    monkeypatch.setenv("HF_ENDPOINT", fake.endpoint)
    yield fake
    fake.stop()


@pytest.fixture
def repo(hub: FakeHub) -> FakeRepo:
    return hub.repos[REPO_ID]


@pytest.fixture
def manifest(repo: FakeRepo) -> ModelManifest:
    return tiny_manifest(repo.commit)


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "models")
