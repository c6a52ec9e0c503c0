"""A fake Hugging Face hub on 127.0.0.1 for tests: real HTTP, real sockets, no internet.

It speaks the parts of the hub API that huggingface_hub and our downloader use:

    GET  /api/models/ORG/NAME/revision/REV        model info ({"id", "sha", "siblings"})
    GET  /api/models/ORG/NAME/tree/REV[/PATH]     tree entries, LFS files with their sha256
    POST /api/models/ORG/NAME/paths-info/REV      the same entries for the posted ``paths``
    HEAD|GET /ORG/NAME/resolve/REV/PATH           plain git files: 200 with ETag (git blob id)
                                                  LFS files: 302 to the CDN with X-Linked-Etag
                                                  (sha256) and X-Linked-Size
    and X-Repo-Commit on every resolve answer; 404s carry X-Error-Code like the hub's.

LFS bytes come from a second listener (the "CDN", another port, so huggingface_hub treats
it as a foreign host exactly as with the real CDN). Both serve ``Range: bytes=N-`` with 206.

Knobs for failure tests, all thread-safe and countable through ``requests``:

    hub.fail(status=500, times=2, match="resolve")  next matching requests answer 500
    hub.drop_after(nbytes, times=1, match=...)     send headers + nbytes of the body, then cut
    hub.throttle(bytes_per_sec)                    slow bodies down (for kill-mid-file tests)
    hub.ignore_range = True                        answer 200 with the whole file to a Range
    hub.range_requests(match)                      Range headers of the matching GETs

Usage::

    with FakeHub({"org/model": {"config.json": b"{}", "w.safetensors": data}}) as hub:
        os.environ["HF_ENDPOINT"] = hub.endpoint
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, quote, unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".model", ".pt", ".ckpt")


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def default_is_lfs(path: str, data: bytes) -> bool:
    """Like a typical hub repo's .gitattributes: weights and anything big go to LFS."""
    return path.endswith(LFS_SUFFIXES) or path.endswith("tokenizer.json") or len(data) > 10 * 1024 * 1024


@dataclass
class FakeRepo:
    repo_id: str
    files: dict[str, bytes]
    commit: str = ""
    branches: dict[str, str] = field(default_factory=dict)
    is_lfs: Callable[[str, bytes], bool] = default_is_lfs

    def __post_init__(self) -> None:
        if not self.commit:
            listing = "".join(f"{p}:{git_blob_id(d)}\n" for p, d in sorted(self.files.items()))
            self.commit = hashlib.sha1(f"{self.repo_id}\n{listing}".encode()).hexdigest()
        self.branches.setdefault("main", self.commit)

    def resolve(self, revision: str) -> str | None:
        if revision == self.commit:
            return self.commit
        return self.branches.get(revision)

    def entry(self, path: str) -> dict:
        data = self.files[path]
        out = {"type": "file", "oid": git_blob_id(data), "size": len(data), "path": path}
        if self.is_lfs(path, data):
            # The git object is a small pointer file; the hub reports the pointer's oid.
            pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256_hex(data)}\nsize {len(data)}\n"
            out["oid"] = git_blob_id(pointer.encode())
            out["lfs"] = {"oid": sha256_hex(data), "size": len(data), "pointerSize": len(pointer)}
        return out

    def folders(self) -> set[str]:
        out = set()
        for p in self.files:
            parts = p.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                out.add("/".join(parts[:i]))
        return out


@dataclass
class LoggedRequest:
    server: str  # "hub" | "cdn"
    method: str
    path: str
    range: str | None
    status: int


@dataclass
class _Fault:
    kind: str  # "status" | "drop"
    times: int
    match: str
    server: str | None
    status: int = 500
    nbytes: int = 0


class FakeHub:
    def __init__(self, repos: dict[str, dict[str, bytes]] | list[FakeRepo] | None = None) -> None:
        if isinstance(repos, dict):
            repos = [FakeRepo(repo_id, files) for repo_id, files in repos.items()]
        self.repos: dict[str, FakeRepo] = {r.repo_id: r for r in (repos or [])}
        self.requests: list[LoggedRequest] = []
        self.ignore_range = False
        self.bytes_per_sec: float | None = None
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._hub_server: ThreadingHTTPServer | None = None
        self._cdn_server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    # -- life cycle -----------------------------------------------------------------------

    def start(self) -> "FakeHub":
        self._hub_server = _Server(("127.0.0.1", 0), _handler(self, "hub"))
        self._cdn_server = _Server(("127.0.0.1", 0), _handler(self, "cdn"))
        for server in (self._hub_server, self._cdn_server):
            t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        for server in (self._hub_server, self._cdn_server):
            if server is not None:
                server.shutdown()
                server.server_close()
                server.close_all()
        for t in self._threads:
            t.join(timeout=5)
        self._threads.clear()

    def __enter__(self) -> "FakeHub":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        assert self._hub_server is not None, "start() the fake hub first"
        return f"http://127.0.0.1:{self._hub_server.server_address[1]}"

    @property
    def cdn_endpoint(self) -> str:
        assert self._cdn_server is not None
        return f"http://127.0.0.1:{self._cdn_server.server_address[1]}"

    # -- repos ----------------------------------------------------------------------------

    def add_repo(self, repo: FakeRepo) -> FakeRepo:
        with self._lock:
            self.repos[repo.repo_id] = repo
        return repo

    # -- knobs ----------------------------------------------------------------------------

    def fail(self, status: int = 500, times: int = 1, match: str = "", server: str | None = None) -> None:
        """The next ``times`` requests whose path contains ``match`` answer ``status``."""
        with self._lock:
            self._faults.append(_Fault("status", times, match, server, status=status))

    def drop_after(self, nbytes: int, times: int = 1, match: str = "", server: str | None = None) -> None:
        """The next ``times`` matching GETs send full headers, ``nbytes`` of body, then close."""
        with self._lock:
            self._faults.append(_Fault("drop", times, match, server, nbytes=nbytes))

    def throttle(self, bytes_per_sec: float | None) -> None:
        self.bytes_per_sec = bytes_per_sec

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def range_requests(self, match: str = "") -> list[str | None]:
        """The Range header (None when absent) of every body GET whose path contains ``match``."""
        with self._lock:
            return [
                r.range
                for r in self.requests
                if r.method == "GET" and match in r.path and (r.server == "cdn" or "/resolve/" in r.path)
                and r.status in (200, 206, 416)
            ]

    def _take_fault(self, kind: str, server: str, path: str) -> _Fault | None:
        with self._lock:
            for f in self._faults:
                if f.kind == kind and f.times > 0 and f.match in path and f.server in (None, server):
                    f.times -= 1
                    return f
        return None

    def _log(self, entry: LoggedRequest) -> None:
        with self._lock:
            self.requests.append(entry)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()

    def handle_error(self, request, client_address):  # type: ignore[no-untyped-def]
        # Connections cut on purpose (failure knobs, stop()) are expected: no traceback spam.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    def process_request(self, request, client_address):  # type: ignore[no-untyped-def]
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):  # type: ignore[no-untyped-def]
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_all(self) -> None:
        """Cut connections still open, as a stopped server would."""
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


_RESOLVE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
_API = re.compile(r"^/api/models/([^/]+/[^/]+)/(revision|tree|paths-info)/([^/]+)(?:/(.*))?$")
_CDN = re.compile(r"^/lfs/([^/]+/[^/]+)/([0-9a-f]{64})$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


def _handler(hub: FakeHub, server: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # keep test output clean
            pass

        def do_HEAD(self) -> None:
            self._dispatch("HEAD")

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        # -- routing ----------------------------------------------------------------------

        def _dispatch(self, method: str) -> None:
            path = unquote(urlsplit(self.path).path)
            fault = hub._take_fault("status", server, path)
            if fault is not None:
                self._reply(method, path, fault.status, b"injected failure", {"Content-Type": "text/plain"})
                return
            if server == "cdn":
                m = _CDN.match(path)
                if m and method in ("GET", "HEAD"):
                    repo = hub.repos.get(m.group(1))
                    data = _by_sha256(repo, m.group(2)) if repo else None
                    if data is not None:
                        self._send_bytes(method, path, data, {"ETag": f'"{m.group(2)}"'})
                        return
                self._reply(method, path, 404, b"not found", {"X-Error-Code": "EntryNotFound"})
                return
            m = _API.match(path)
            if m:
                self._api(method, path, m.group(1), m.group(2), m.group(3), m.group(4) or "")
                return
            m = _RESOLVE.match(path)
            if m and method in ("GET", "HEAD"):
                self._resolve(method, path, m.group(1), m.group(2), m.group(3))
                return
            self._reply(method, path, 404, b"no such endpoint", {})

        def _repo_at(self, method: str, path: str, repo_id: str, revision: str) -> tuple[FakeRepo, str] | None:
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._json(method, path, 404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
                return None
            commit = repo.resolve(revision)
            if commit is None:
                self._json(method, path, 404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"})
                return None
            return repo, commit

        def _api(self, method: str, path: str, repo_id: str, kind: str, revision: str, sub: str) -> None:
            found = self._repo_at(method, path, repo_id, unquote(revision))
            if found is None:
                return
            repo, commit = found
            if kind == "revision" and method == "GET":
                siblings = [{"rfilename": p} for p in sorted(repo.files)]
                self._json(method, path, 200, {"id": repo.repo_id, "sha": commit, "siblings": siblings})
            elif kind == "tree" and method == "GET":
                query = parse_qs(urlsplit(self.path).query)
                recursive = query.get("recursive", ["False"])[0].lower() == "true"
                self._json(method, path, 200, _tree(repo, sub, recursive))
            elif kind == "paths-info" and method == "POST":
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                wanted = form.get("paths", [])
                entries = [repo.entry(p) for p in wanted if p in repo.files]
                entries += [{"type": "directory", "oid": "0" * 40, "size": 0, "path": p}
                            for p in wanted if p in repo.folders()]
                self._json(method, path, 200, entries)
            else:
                self._reply(method, path, 405, b"method not allowed", {})

        def _resolve(self, method: str, path: str, repo_id: str, revision: str, file_path: str) -> None:
            found = self._repo_at(method, path, repo_id, revision)
            if found is None:
                return
            repo, commit = found
            data = repo.files.get(file_path)
            if data is None:
                self._reply(method, path, 404, b"entry not found",
                            {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit})
                return
            entry = repo.entry(file_path)
            headers = {"X-Repo-Commit": commit}
            if "lfs" in entry:
                sha = entry["lfs"]["oid"]
                headers.update({
                    "Location": f"{hub.cdn_endpoint}/lfs/{quote(repo_id)}/{sha}",
                    "X-Linked-Etag": f'"{sha}"',
                    "X-Linked-Size": str(len(data)),
                    "ETag": f'"{entry["oid"]}"',
                })
                self._reply(method, path, 302, b"", headers)
                return
            headers["ETag"] = f'"{entry["oid"]}"'
            self._send_bytes(method, path, data, headers)

        # -- answers ----------------------------------------------------------------------

        def _send_bytes(self, method: str, path: str, data: bytes, headers: dict[str, str]) -> None:
            requested = self.headers.get("Range")
            start, status = 0, 200
            if requested and not hub.ignore_range:
                m = _RANGE.match(requested.strip())
                if m:
                    start = int(m.group(1))
                    if start >= len(data):
                        self._reply(method, path, 416, b"", {"Content-Range": f"bytes */{len(data)}"},
                                    range_header=requested)
                        return
                    status = 206
                    headers = {**headers, "Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
            body = data[start:]
            drop = hub._take_fault("drop", server, path) if method == "GET" else None
            hub._log(LoggedRequest(server, method, path, requested, status))
            self.send_response(status)
            for k, v in {**headers, "Accept-Ranges": "bytes", "Content-Length": str(len(body))}.items():
                self.send_header(k, v)
            self.end_headers()
            if method == "HEAD":
                return
            limit = drop.nbytes if drop is not None else len(body)
            self._write_slowly(body[:limit])
            if drop is not None:
                self.close_connection = True
                try:
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        def _write_slowly(self, body: bytes) -> None:
            step = 16 * 1024
            for i in range(0, len(body), step):
                chunk = body[i:i + step]
                try:
                    self.wfile.write(chunk)
                except OSError:
                    return
                rate = hub.bytes_per_sec
                if rate:
                    time.sleep(len(chunk) / rate)

        def _json(self, method: str, path: str, status: int, payload: object, headers: dict[str, str] | None = None) -> None:
            self._reply(method, path, status, json.dumps(payload).encode(),
                        {"Content-Type": "application/json", **(headers or {})})

        def _reply(self, method: str, path: str, status: int, body: bytes, headers: dict[str, str],
                   range_header: str | None = None) -> None:
            hub._log(LoggedRequest(server, method, path, range_header or self.headers.get("Range"), status))
            self.send_response(status)
            for k, v in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(k, v)
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(body)

    return Handler


def _by_sha256(repo: FakeRepo, sha: str) -> bytes | None:
    return next((d for d in repo.files.values() if sha256_hex(d) == sha), None)


def _tree(repo: FakeRepo, sub: str, recursive: bool) -> list[dict]:
    prefix = sub.strip("/") + "/" if sub.strip("/") else ""
    out: list[dict] = []
    for folder in sorted(repo.folders()):
        rest = folder[len(prefix):] if folder.startswith(prefix) else None
        if rest and (recursive or "/" not in rest):
            out.append({"type": "directory", "oid": "0" * 40, "size": 0, "path": folder})
    for p in sorted(repo.files):
        rest = p[len(prefix):] if p.startswith(prefix) else None
        if rest and (recursive or "/" not in rest):
            out.append(repo.entry(p))
    return out
