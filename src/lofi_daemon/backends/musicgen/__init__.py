"""MusicGen backend: quick previews (5-30 s) on ``transformers``' MusicGen.

Importing this package is cheap (no torch, no transformers); the heavy modules
(``generation``) are imported by ``MusicgenBackend.load`` / ``generate``.

    backend.py     MusicgenBackend: capabilities, install check, load/unload, generate
    variants.py    which hub checkpoints are supported and their manifests
    checkpoint.py  safetensors headers: integrity before loading, size for the memory check
    lengths.py     seconds <-> frames <-> tokens <-> samples (the delay pattern's +3)
    generation.py  one generate call with per-token progress, cancel and NaN checks
    continuation.py  continue_from: the source's tail as prompt codes, and the join at 48 kHz
"""

from .backend import MusicgenBackend

__all__ = ["MusicgenBackend"]
