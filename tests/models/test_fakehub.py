"""The fake hub is faithful enough that huggingface_hub's own client works against it,
so tests built on it exercise the same requests and headers as the real hub."""

from __future__ import annotations

import hashlib
from pathlib import Path

from fakehub import git_blob_id
from model_helpers import REPO_ID, tiny_files


def test_huggingface_hub_lists_the_tree_with_lfs_sha256(hub, repo):
    from huggingface_hub import HfApi

    api = HfApi(endpoint=hub.endpoint)
    entries = {e.path: e for e in api.list_repo_tree(REPO_ID, recursive=True, revision="main") if hasattr(e, "lfs")}
    files = tiny_files()
    assert set(entries) == set(files)
    weights = entries["encoder/model.safetensors"]
    assert weights.lfs is not None and weights.lfs.sha256 == hashlib.sha256(files["encoder/model.safetensors"]).hexdigest()
    config = entries["encoder/config.json"]
    assert config.lfs is None and config.blob_id == git_blob_id(files["encoder/config.json"])
    assert api.model_info(REPO_ID, revision="main").sha == repo.commit


def test_huggingface_hub_metadata_follows_the_hub_and_stops_at_the_cdn(hub, repo):
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    data = tiny_files()["encoder/model.safetensors"]
    meta = get_hf_file_metadata(hf_hub_url(REPO_ID, "encoder/model.safetensors", endpoint=hub.endpoint))
    assert meta.commit_hash == repo.commit
    assert meta.etag == hashlib.sha256(data).hexdigest()
    assert meta.size == len(data)
    assert meta.location.startswith(hub.cdn_endpoint)


def test_huggingface_hubs_own_downloader_gets_the_same_bytes(hub, repo, tmp_path: Path):
    from huggingface_hub import hf_hub_download

    path = hf_hub_download(REPO_ID, "decoder/diffusion_pytorch_model.safetensors", cache_dir=tmp_path,
                           endpoint=hub.endpoint)
    assert Path(path).read_bytes() == tiny_files()["decoder/diffusion_pytorch_model.safetensors"]


def test_knobs_count_and_break_requests(hub, repo):
    import httpx2

    url = f"{hub.endpoint}/{REPO_ID}/resolve/main/encoder/config.json"
    hub.fail(status=503, times=1, match="config.json")
    assert httpx2.get(url).status_code == 503
    assert httpx2.get(url).status_code == 200
    partial = httpx2.get(url, headers={"Range": "bytes=4-"})
    assert partial.status_code == 206 and partial.content == tiny_files()["encoder/config.json"][4:]
    assert hub.range_requests("config.json") == [None, "bytes=4-"]
