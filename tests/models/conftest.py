"""Fixtures for the model-setup tests: a tiny repo on a fake hub, and a private store."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakehub import FakeHub, FakeRepo  # tests/ is on sys.path (rootdir conftest)
from model_helpers import REPO_ID, tiny_files, tiny_manifest, use_fake_hub

from lofi_daemon.models.manifest import ModelManifest
from lofi_daemon.models.store import ModelStore


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch):
    """A started fake hub serving the tiny repo; this process's hub client points at it."""
    fake = FakeHub([FakeRepo(REPO_ID, tiny_files())]).start()
    use_fake_hub(monkeypatch, fake.endpoint)
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
