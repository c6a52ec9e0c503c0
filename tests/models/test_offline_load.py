"""After setup, loading reads only local files: proved with the fake hub stopped.

The ACE-Step tiny fixture checkpoint (real layout, built by the official classes) is served
as the ACE-Step repo; the real ACE_STEP manifest, re-pointed at the fake commit, downloads
it; then the hub is stopped and the text encoder, tokenizer and DCAE load from the
snapshot folder in a fresh process that has no offline switch set, so any request would
hit a closed port and fail.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

from model_helpers import FAST_RETRY, use_fake_hub
from fakehub import FakeHub, FakeRepo

from lofi_daemon.models.manifests import ACE_STEP
from lofi_daemon.models.store import ModelStore

LOAD_SCRIPT = r"""
import json, sys
from pathlib import Path
snap = Path(sys.argv[1])
import torch
from transformers import AutoTokenizer, UMT5EncoderModel
from diffusers import AutoencoderDC
from safetensors.torch import load_file

tokenizer = AutoTokenizer.from_pretrained(snap / "umt5-base")
encoder = UMT5EncoderModel.from_pretrained(snap / "umt5-base").eval()
ids = tokenizer(["lo-fi hip hop, mellow piano"], return_tensors="pt")
with torch.no_grad():
    hidden = encoder(**ids).last_hidden_state
dcae = AutoencoderDC.from_pretrained(snap / "music_dcae_f8c8")
transformer = load_file(snap / "ace_step_transformer" / "diffusion_pytorch_model.safetensors")
vocoder = load_file(snap / "music_vocoder" / "diffusion_pytorch_model.safetensors")
print(json.dumps({
    "hidden": list(hidden.shape),
    "finite": bool(torch.isfinite(hidden).all()),
    "dcae_params": sum(p.numel() for p in dcae.parameters()),
    "transformer_tensors": len(transformer),
    "vocoder_tensors": len(vocoder),
}))
"""


def fixture_files(checkpoint: Path) -> dict[str, bytes]:
    return {str(p.relative_to(checkpoint)): p.read_bytes() for p in sorted(checkpoint.rglob("*")) if p.is_file()}


def test_ace_step_files_load_from_the_snapshot_with_the_hub_stopped(acestep_fixture, tmp_path, monkeypatch):
    files = fixture_files(acestep_fixture / "checkpoint")
    hub = FakeHub([FakeRepo(ACE_STEP.repo_id, files)]).start()
    try:
        use_fake_hub(monkeypatch, hub.endpoint)
        # The real manifest (components, files, optional spiece.model), at the fake commit;
        # the pinned sizes/sha256 are the real 3.5B files', so they are left out here.
        manifest = dataclasses.replace(ACE_STEP, revision=hub.repos[ACE_STEP.repo_id].commit, known=())
        store = ModelStore(tmp_path / "models")
        record = store.download(manifest, retry=FAST_RETRY)
    finally:
        hub.stop()
        dead_endpoint = hub.endpoint

    assert {f.path for f in record.files} == set(files)  # incl. the optional spiece.model
    assert {f.component for f in record.files} == {"transformer", "text_encoder", "dcae", "vocoder"}
    snap = store.verify_for_load(manifest)
    assert snap == store.snapshot_dir(manifest)

    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT=dead_endpoint, HF_HOME=str(tmp_path / "hf-home"), TOKENIZERS_PARALLELISM="false")
    done = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, str(snap)], env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["hidden"][0] == 1 and loaded["hidden"][2] == 32  # d_model of the tiny UMT5
    assert loaded["finite"]
    assert loaded["dcae_params"] > 0 and loaded["transformer_tensors"] > 0 and loaded["vocoder_tensors"] > 0
    # Nothing was written to a hub cache: the load never went looking for the hub.
    assert not (tmp_path / "hf-home" / "hub").exists()

