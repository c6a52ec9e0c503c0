"""Pure arithmetic and file-format checks: no model is built here."""

from __future__ import annotations

import json
import struct

import pytest

from lofi_daemon.backends.musicgen.checkpoint import (
    CorruptCheckpoint,
    runtime_bytes,
    summarize_safetensors,
    weight_files,
)
from lofi_daemon.backends.musicgen.lengths import TokenGrid

# The audio_encoder/decoder fields of facebook/musicgen-small's and -stereo-small's config.json.
SMALL = {"audio_encoder": {"sampling_rate": 32000, "upsampling_ratios": [8, 5, 4, 4]},
         "decoder": {"num_codebooks": 4, "audio_channels": 1}}
STEREO = {"audio_encoder": {"sampling_rate": 32000, "upsampling_ratios": [8, 5, 4, 4]},
          "decoder": {"num_codebooks": 8, "audio_channels": 2}}


def test_thirty_seconds_is_1500_frames_and_1503_decoder_steps():
    grid = TokenGrid.from_config(SMALL)
    assert grid.frame_rate == 50
    assert grid.frames_for(30.0) == 1500
    assert grid.tokens_for(1500) == 1503
    assert grid.samples_for(30.0) == 960_000


def test_stereo_checkpoints_delay_per_channel_so_need_the_same_steps():
    assert TokenGrid.from_config(STEREO).tokens_for(1500) == 1503


@pytest.mark.parametrize("seconds", [5.0, 5.1, 7.33, 12.345, 29.99])
def test_frames_always_cover_the_requested_length(seconds):
    grid = TokenGrid.from_config(SMALL)
    frames = grid.frames_for(seconds)
    assert frames * grid.hop_length >= grid.samples_for(seconds)
    assert (frames - 1) * grid.hop_length < grid.samples_for(seconds)  # never a whole frame too many


def _write_safetensors(path, tensors: dict[str, tuple[str, list[int], int]], data_bytes: int):
    header = {}
    offset = 0
    for name, (dtype, shape, nbytes) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + b"\0" * data_bytes)


def test_header_gives_the_parameter_count(tmp_path):
    path = tmp_path / "model.safetensors"
    _write_safetensors(path, {"a": ("F32", [3, 4], 48), "b": ("F16", [5], 10)}, data_bytes=58)
    summary = summarize_safetensors(path)
    assert summary.parameters == 17 and summary.data_bytes == 58


def test_truncated_weights_are_reported_as_corrupt(tmp_path):
    path = tmp_path / "model.safetensors"
    _write_safetensors(path, {"a": ("F32", [3, 4], 48)}, data_bytes=40)
    with pytest.raises(CorruptCheckpoint, match="truncated"):
        summarize_safetensors(path)


def test_garbage_instead_of_a_header_is_reported_as_corrupt(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"<html>Rate limited</html>" * 10)  # what a proxy error page looks like on disk
    with pytest.raises(CorruptCheckpoint, match="model.safetensors"):
        summarize_safetensors(path)


def test_sharded_checkpoints_list_every_shard_once(tmp_path):
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors",
                            "c": "model-00001-of-00002.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    assert [p.name for p in weight_files(tmp_path)] == ["model-00001-of-00002.safetensors",
                                                        "model-00002-of-00002.safetensors"]


def test_memory_estimate_grows_with_precision_and_length():
    decoder = {"num_hidden_layers": 24, "hidden_size": 1024}
    fp32 = runtime_bytes(590_000_000, 4, decoder, 1503)
    fp16 = runtime_bytes(590_000_000, 2, decoder, 1503)
    assert fp32 > 590_000_000 * 4 and fp16 > 590_000_000 * 2
    assert fp16 < fp32
    assert runtime_bytes(590_000_000, 2, decoder, 253) < fp16
