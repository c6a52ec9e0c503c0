"""The radio tests reuse the playback tests' helpers (capture sink, silence runs, daemons)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "playback"))
