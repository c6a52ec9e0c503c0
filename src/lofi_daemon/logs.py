"""Logging: stderr plus one rotating file, ``<cache>/logs/daemon.log``. Never stdout (the protocol).

The log holds prompts and paths, so it is private like the tracks: the folder is 0700, the
file and its rotated copies are created 0600 (an older, looser one is tightened), and a
symlink planted at the log path is never followed.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_NAME = "daemon.log"
FILE_MODE = 0o600
DIR_MODE = 0o700


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A RotatingFileHandler whose every file is opened 0600, without following a symlink."""

    def _open(self):  # type: ignore[override]  # the stdlib opens with the umask's mode
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                     FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)  # a log made 0644 by an older version
        except OSError:
            pass
        return open(fd, self.mode, encoding=self.encoding, errors=self.errors)


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
            logs_dir.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
            os.chmod(logs_dir, DIR_MODE)
            file_handler = PrivateRotatingFileHandler(logs_dir / LOG_NAME, maxBytes=2_000_000, backupCount=3,
                                                      encoding="utf-8")
            file_handler.setFormatter(logging.Formatter(FORMAT))
            root.addHandler(file_handler)
        except OSError as exc:  # a read-only cache (or a planted symlink) must not stop the daemon
            root.warning("cannot write the log file in %s: %s", logs_dir, exc)
