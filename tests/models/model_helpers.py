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


def use_fake_hub(monkeypatch, endpoint: str) -> None:
    """Point this process's huggingface_hub at the fake hub, online.

    huggingface_hub reads HF_HUB_OFFLINE once, at import, and another test may have
    imported it offline. Downloads are online by definition (the daemon runs them in a
    worker without HF_HUB_OFFLINE). Our code passes the endpoint explicitly (HF_ENDPOINT
    read at call time), but the library also makes one side request per process, its
    agent-registry lookup, to the endpoint it saw at import (possibly huggingface.co):
    give it its "nothing found" answer up front so no test reaches for the internet.
    """
    import huggingface_hub.constants as constants
    import huggingface_hub.utils._detect_agent as detect_agent

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(detect_agent, "_registry", {"standardEnvVars": [], "harnesses": {}}, raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", endpoint)


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
