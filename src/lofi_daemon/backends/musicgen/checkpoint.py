"""What the safetensors files on disk say, read without torch.

A safetensors file is an 8-byte little-endian header length, a JSON header naming every
tensor's dtype, shape and byte range, then the data. Reading only the header tells us
(a) whether the file is whole: a truncated download or a scribbled header is caught here
with a clear message instead of a deep error from the loader, and (b) how many
parameters the model has, which sizes the memory check before anything is loaded.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

_MAX_HEADER_BYTES = 100 * 2**20  # the format's own limit


class CorruptCheckpoint(ValueError):
    """A weights file that cannot be what it claims to be."""


@dataclass(frozen=True)
class WeightsSummary:
    parameters: int
    data_bytes: int


def summarize_safetensors(path: Path) -> WeightsSummary:
    """Parse ``path``'s header and check it against the file size."""
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise CorruptCheckpoint(f"{path.name} is {size} bytes, too short for a safetensors file")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > _MAX_HEADER_BYTES or 8 + header_len > size:
            raise CorruptCheckpoint(f"{path.name} has a broken header (claims {header_len} header bytes)")
        raw = f.read(header_len)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise CorruptCheckpoint(f"{path.name} has an unreadable header: {exc}") from None
    if not isinstance(header, dict):
        raise CorruptCheckpoint(f"{path.name} header is not a JSON object")

    parameters = 0
    data_end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            shape = [int(d) for d in entry["shape"]]
            begin, end = (int(o) for o in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise CorruptCheckpoint(f"{path.name}: tensor {name!r} has a malformed entry") from None
        parameters += math.prod(shape)
        data_end = max(data_end, end)
        if begin > end:
            raise CorruptCheckpoint(f"{path.name}: tensor {name!r} has an inverted byte range")
    expected = 8 + header_len + data_end
    if expected != size:
        raise CorruptCheckpoint(
            f"{path.name} is {size} bytes but its header describes {expected} bytes "
            f"({'truncated' if size < expected else 'trailing data'})"
        )
    return WeightsSummary(parameters=parameters, data_bytes=data_end)


def weight_files(snapshot: Path) -> list[Path]:
    """The safetensors files ``from_pretrained`` will read: the index's shards, or the one file."""
    snapshot = Path(snapshot)
    index = snapshot / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            return [snapshot / name for name in sorted(set(weight_map.values()))]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CorruptCheckpoint(f"{index.name} is unreadable: {exc}") from None
    single = snapshot / "model.safetensors"
    if not single.is_file():
        raise CorruptCheckpoint("neither model.safetensors nor model.safetensors.index.json is present")
    return [single]


def runtime_bytes(parameters: int, dtype_bytes: int, decoder_config: dict, max_tokens: int) -> int:
    """Memory one generation needs: weights + key/value cache for both CFG halves + slack.

    The cache holds keys and values for every decoder layer and step, for the conditional
    and unconditional batch rows. 15 % plus 256 MiB covers activations, the logits and the
    allocator's fragmentation (musicgen-small peaks well inside that on CUDA).
    """
    layers = int(decoder_config.get("num_hidden_layers", 0))
    hidden = int(decoder_config.get("hidden_size", 0))
    kv_cache = 2 * layers * hidden * max_tokens * 2 * dtype_bytes
    return int((parameters * dtype_bytes + kv_cache) * 1.15) + 256 * 2**20
