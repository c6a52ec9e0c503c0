"""Fixtures for the model-setup tests: a tiny repo on a fake hub, and a private store."""

from __future__ import annotations

import dataclasses
import hashlib
import random
from pathlib import Path

import pytest
from fakehub import FakeHub, FakeRepo  # tests/ is on sys.path (rootdir conftest)

from lofi_daemon.models.download import RetryPolicy
from lofi_daemon.models.manifest import Component, ModelManifest
from lofi_daemon.models.store import ModelStore

REPO_ID = "lofi-test/tiny-model"

#: Retries without the real multi-second waits.
FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)


def random_bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def tiny_files() -> dict[str, bytes]:
    """Three components, LFS weights and plain git configs, like a real checkpoint."""
    return {
        "encoder/config.json": b'{"d_model": 8}',
        "encoder/model.safetensors": random_bytes(1_200_000, 1),
        "decoder/config.json": b'{"channels": [8, 16]}',
        "decoder/diffusion_pytorch_model.safetensors": random_bytes(900_000, 2),
        "tokenizer/tokenizer.json": random_bytes(300_000, 3),
        "tokenizer/tokenizer_config.json": b'{"model_max_length": 256}',
        "README.md": b"not part of any component",
    }


def tiny_manifest(revision: str, **changes: object) -> ModelManifest:
    manifest = ModelManifest(
        backend="tiny",
        repo_id=REPO_ID,
        revision=revision,
        components=(
            Component("encoder", ("encoder/config.json", "encoder/model.safetensors")),
            Component("decoder", ("decoder/config.json", "decoder/diffusion_pytorch_model.safetensors")),
            Component(
                "tokenizer",
                ("tokenizer/tokenizer.json", "tokenizer/tokenizer_config.json"),
                optional=("tokenizer/spiece.model",),  # absent from this repo: skipped
            ),
        ),
    )
    return dataclasses.replace(manifest, **changes)  # type: ignore[arg-type]


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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
