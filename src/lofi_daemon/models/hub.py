"""Talking to the Hugging Face hub: commit, file metadata, download locations.

The only module that imports huggingface_hub, and only inside functions, so daemon start
stays fast. We use the hub's own helpers for everything but the transfer itself:

- ``HfApi.model_info(revision=...)``: a branch name -> the commit it points at;
- ``HfApi.get_paths_info``: size, git blob id and LFS sha256 of the files we need;
- ``hf_hub_url`` + ``get_hf_file_metadata`` (HEAD /resolve): where the bytes are served
  (a redirect ``Location`` for LFS files) with ``X-Repo-Commit``, ``X-Linked-Etag`` and
  ``X-Linked-Size``.

The endpoint is ``HF_ENDPOINT`` read at call time (huggingface_hub reads it once at import).
Errors become ``TransientError`` (worth a retry: network, 5xx, 429) or ``DownloadFailed``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..errors import DownloadFailed

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://huggingface.co"
METADATA_TIMEOUT = 30.0


class TransientError(Exception):
    """A failure a retry may fix (network trouble, server error, short read)."""


class HubUnreachable(TransientError):
    """No connection to the hub at all (no DNS answer, connection refused): offline, most likely.

    Retrying the first contact only makes the user wait; a file already downloading retries."""


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    git_oid: str
    sha256: str | None  # set for LFS files


@dataclass(frozen=True)
class Located:
    url: str  # where GET serves the bytes (may be a CDN)
    size: int | None
    etag: str | None
    commit: str | None


def endpoint_from_env() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


class Hub:
    def __init__(self, endpoint: str | None = None) -> None:
        self.endpoint = (endpoint or endpoint_from_env()).rstrip("/")
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            raise DownloadFailed(
                "cannot download: the Hugging Face hub is in offline mode in this process",
                hint="Downloads run in a worker process without HF_HUB_OFFLINE "
                "(lofi_daemon.models.worker.download_in_subprocess).",
            )
        from huggingface_hub import HfApi

        self.api = HfApi(endpoint=self.endpoint)

    # -- metadata ---------------------------------------------------------------------

    def resolve_commit(self, repo_id: str, revision: str) -> str:
        with _translated(repo_id, revision):
            info = self.api.model_info(repo_id, revision=revision, timeout=METADATA_TIMEOUT)
        if not info.sha:
            raise TransientError(f"the hub did not say which commit {revision!r} of {repo_id} is")
        return info.sha

    def paths_info(self, repo_id: str, commit: str, paths: list[str]) -> dict[str, RemoteFile]:
        """Metadata of those ``paths`` that exist at ``commit`` (missing ones are absent)."""
        with _translated(repo_id, commit):
            entries = self.api.get_paths_info(repo_id, paths, revision=commit)
        out: dict[str, RemoteFile] = {}
        for e in entries:
            if not hasattr(e, "blob_id"):
                continue  # a folder
            sha256 = e.lfs.sha256 if e.lfs is not None else None
            size = e.lfs.size if e.lfs is not None else e.size
            out[e.path] = RemoteFile(e.path, int(size), e.blob_id, sha256)
        return out

    def locate(self, repo_id: str, commit: str, path: str) -> Located:
        from huggingface_hub import get_hf_file_metadata, hf_hub_url

        url = hf_hub_url(repo_id, path, revision=commit, endpoint=self.endpoint)
        with _translated(repo_id, commit, path):
            meta = get_hf_file_metadata(url, timeout=METADATA_TIMEOUT, endpoint=self.endpoint)
        return Located(url=meta.location, size=meta.size, etag=meta.etag, commit=meta.commit_hash)

    # -- transfer ---------------------------------------------------------------------

    def headers_for(self, url: str) -> dict[str, str]:
        """Auth only for the hub itself, never for a CDN it redirects to; no compression,
        so byte offsets in Range requests mean bytes of the file."""
        headers = {"Accept-Encoding": "identity"}
        if _origin(url) == _origin(self.endpoint):
            from huggingface_hub.utils import build_hf_headers

            headers.update(build_hf_headers())
        return headers

    def stream(self, url: str, headers: dict[str, str], read_timeout: float) -> Any:
        """An httpx-style streaming GET (a context manager yielding the response)."""
        import httpx2  # huggingface_hub's HTTP client; shares its session settings
        from huggingface_hub import get_session

        timeout = httpx2.Timeout(connect=METADATA_TIMEOUT, read=read_timeout, write=METADATA_TIMEOUT, pool=None)
        return get_session().stream("GET", url, headers=headers, timeout=timeout, follow_redirects=True)

    @staticmethod
    def transport_errors() -> tuple[type[BaseException], ...]:
        import httpx2

        return (httpx2.TransportError, ConnectionError, TimeoutError)


class _translated:
    """Turn huggingface_hub / httpx exceptions into TransientError or DownloadFailed."""

    def __init__(self, repo_id: str, revision: str, path: str | None = None) -> None:
        self.what = f"{repo_id}@{revision[:12]}" + (f"/{path}" if path else "")
        self.repo_id = repo_id

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None:
            return False
        from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

        if isinstance(exc, OfflineModeIsEnabled):
            raise DownloadFailed(f"cannot reach the hub for {self.what}: offline mode is on") from exc
        if isinstance(exc, HfHubHTTPError):
            status = exc.response.status_code if exc.response is not None else 0
            if status >= 500 or status in (408, 429) or status == 0:
                raise TransientError(f"hub answered {status} for {self.what}") from exc
            raise http_failure(status, self.what, self.repo_id) from exc
        import httpx2

        if isinstance(exc, (httpx2.ConnectError, ConnectionRefusedError)) or _is_name_error(exc):
            from huggingface_hub import constants

            raise HubUnreachable(f"cannot reach the model hub at {constants.ENDPOINT} (offline?)") from exc
        if isinstance(exc, Hub.transport_errors()):
            raise TransientError(f"network error for {self.what}: {exc}") from exc
        return False


def _is_name_error(exc: BaseException) -> bool:
    import socket

    while exc is not None:
        if isinstance(exc, socket.gaierror):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def http_failure(status: int, what: str, repo_id: str) -> DownloadFailed:
    if status in (401, 403):
        return DownloadFailed(
            f"the hub refused access to {what} (HTTP {status})",
            hint=f"The repo may be gated: open https://huggingface.co/{repo_id}, accept its licence there, "
            "log in with `hf auth login` (or set HF_TOKEN), then run setup again.",
            status=status,
        )
    if status == 404:
        return DownloadFailed(
            f"{what} was not found on the hub (HTTP 404)",
            hint="Check the model name and your HF_ENDPOINT; the pinned revision may have been removed.",
            status=status,
        )
    return DownloadFailed(f"the hub answered HTTP {status} for {what}", status=status)
