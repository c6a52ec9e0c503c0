"""Helpers for the model-setup tests: a tiny checkpoint-like repo and fast retries."""

from __future__ import annotations

import dataclasses
import hashlib
import random
from pathlib import Path

from lofi_daemon.models.download import RetryPolicy
from lofi_daemon.models.manifest import Component, ModelManifest

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
