"""The Stable Audio 3 tests import their fixture helpers from beside them."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # sa3_fixtures, tiny_sa3 beside the tests
