"""The committed parity fixtures: tiny random-weight models made with the official code.

``make_fixtures.py`` wrote them (see its docstring); the tests read them and never run the
official code. ``tiny_original.safetensors`` is in the original single-file layout.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ORIGINAL = FIXTURES / "tiny_original.safetensors"
CONFIG = FIXTURES / "tiny_model_config.json"
GOLDEN = FIXTURES / "golden.safetensors"


@lru_cache(maxsize=1)
def golden() -> dict:
    from safetensors.torch import load_file

    return load_file(str(GOLDEN))


def checkpoint():
    from safetensors.torch import load_file

    from lofi_daemon.backends.stable_audio_3.convert import Checkpoint

    return Checkpoint(load_file(str(ORIGINAL)), json.loads(CONFIG.read_text()))
