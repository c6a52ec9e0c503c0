"""Logging: stderr plus a rotating file in the cache dir. Never stdout (the protocol)."""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(logs_dir: Path | None, level: str | None = None) -> None:
    level_name = (level or os.environ.get("LOFI_LOG_LEVEL") or "INFO").upper()
    root = logging.getLogger()
    root.setLevel(getattr(logging, level_name, logging.INFO))
    for handler in list(root.handlers):
        root.removeHandler(handler)
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(stderr)
    if logs_dir is not None:
        try:
            logs_dir.mkdir(parents=True, exist_ok=True)
            file_handler = logging.handlers.RotatingFileHandler(
                logs_dir / "daemon.log", maxBytes=2_000_000, backupCount=3, encoding="utf-8")
            file_handler.setFormatter(logging.Formatter(FORMAT))
            root.addHandler(file_handler)
        except OSError as exc:  # a read-only cache must not stop the daemon
            root.warning("cannot write the log file in %s: %s", logs_dir, exc)
