"""The embedded default backend: seeded lofi in numpy, no weights, no download.

One concern per module: ``vocabulary`` (prompt words -> choices), ``tempo`` (a grid that
loops), ``harmony`` (progressions, voicings), ``form`` (sections, phrases), ``melody``
(motifs), ``groove`` (drum patterns), ``kit`` (drum sounds), ``instruments`` (synthesis
models), ``mix`` (tape, buses, loudness), ``backend`` (the steps in order), ``continuation``
(going on from a library track: its next section in its key and tempo).
docs/procedural.md describes the model of the music.
"""

from .backend import MODEL_VERSION, SAMPLE_RATE, Keep, ProceduralBackend, render, song_tempo
from .vocabulary import Choices, describe_report, parse_prompt

__all__ = ["MODEL_VERSION", "SAMPLE_RATE", "Choices", "Keep", "ProceduralBackend", "describe_report", "parse_prompt",
           "render", "song_tempo"]
