"""The real daemon, with the paced stand-in registered by dotted path as backend ``paced``."""

from __future__ import annotations

from lofi_daemon.backends import registry

registry.BACKEND_CLASSES["paced"] = "stand_in:PacedBackend"

if __name__ == "__main__":
    from lofi_daemon.__main__ import main

    main()
