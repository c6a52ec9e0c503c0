"""Which MusicGen checkpoint this backend runs.

The list and the manifests live in ``lofi_daemon.models.manifests`` so that setup and this
backend agree on one set of files. ``musicgen-melody`` is not offered: it is a different
model class (chroma conditioning) built around an audio prompt.
"""

from __future__ import annotations

import logging

from ...models.manifests import DEFAULT_MUSICGEN_MODEL, MUSICGEN_REVISIONS

log = logging.getLogger(__name__)

SUPPORTED_MODELS = tuple(MUSICGEN_REVISIONS)


def choose_model(configured: str | None) -> str:
    """The configured model id, or the default (logged) when the config names another."""
    if not configured:
        return DEFAULT_MUSICGEN_MODEL
    if configured not in MUSICGEN_REVISIONS:
        # Same policy as the other config fields: a bad value must not stop the daemon.
        log.warning("config: musicgen_model %r is not one of %s; using %s",
                    configured, ", ".join(SUPPORTED_MODELS), DEFAULT_MUSICGEN_MODEL)
        return DEFAULT_MUSICGEN_MODEL
    return configured

