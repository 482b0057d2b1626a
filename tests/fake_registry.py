"""A small Docker Registry HTTP API v2 server, enough for `docker push` (no auth, plain HTTP).

The Docker daemon treats 127.0.0.0/8 registries as insecure by default, so a push to
`127.0.0.1:<port>/...` talks plain HTTP to this server. It keeps blobs and manifests in memory,
verifies the sha256 of every finished upload and of every stored manifest, refuses a manifest
that references a blob (or an index that references a manifest) it does not hold, and records
every request.

    with FakeRegistry() as registry:
        client.images.push(f"{registry.host}/ctxeval/base", tag=...)
        registry.manifest("ctxeval/base", tag)

`FakeRegistry(fail_status=500)` answers every request with that status (a broken registry);
with `fail_paths=r"/manifests/"` only requests whose path matches fail. (The daemon retries a
failed layer upload five times, 50 s in all, before it gives up; a failed manifest upload is not
retried, so failing the manifests gives a fast failing push.)
Cross-repository mounts (`POST .../uploads/?mount=&from=`) always answer 202, which makes the
client upload the blob instead.
"""
from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

NAME = r"(?P<name>[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*)"
DIGEST = r"(?P<digest>sha256:[a-f0-9]{64})"
BLOB = re.compile(rf"^/v2/{NAME}/blobs/{DIGEST}$")
UPLOADS = re.compile(rf"^/v2/{NAME}/blobs/uploads/?$")
UPLOAD = re.compile(rf"^/v2/{NAME}/blobs/uploads/(?P<uuid>[a-f0-9-]+)$")
MANIFEST = re.compile(rf"^/v2/{NAME}/manifests/(?P<ref>[A-Za-z0-9_.:-]+)$")

MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
)
INDEX_TYPES = (  # what an engine with the containerd image store may push on top
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class StoredManifest:
    media_type: str
    body: bytes
    digest: str

    @property
    def document(self) -> dict:
        return json.loads(self.body)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    @property
    def blob_digests(self) -> list[str]:
        """The config and layers an image manifest references (none for an index)."""
        if self.is_index:
            return []
        doc = self.document
        return [doc["config"]["digest"]] + [layer["digest"] for layer in doc.get("layers", [])]

    @property
    def child_digests(self) -> list[str]:
        """The manifests an index references (none for an image manifest)."""
        return [item["digest"] for item in self.document.get("manifests", [])] if self.is_index else []


@dataclass
class RegistryState:
    blobs: dict[str, bytes] = field(default_factory=dict)
    uploads: dict[str, bytearray] = field(default_factory=dict)
    manifests: dict[tuple[str, str], StoredManifest] = field(default_factory=dict)  # (name, tag or digest)
    requests: list[tuple[str, str]] = field(default_factory=list)
    digest_mismatches: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-registry/1.0"
    # set per server class in FakeRegistry.start
    state: RegistryState
    fail_status: int | None
    fail_paths: re.Pattern | None

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    # -- plumbing -----------------------------------------------------------------
    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size_line = self.rfile.readline().strip()
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str | None = None, head: bool = False, length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        if content_type:
            self.send_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if body and not head:
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str) -> None:
        body = json.dumps({"errors": [{"code": code, "message": message, "detail": None}]}).encode()
        self._send(status, body, content_type="application/json", head=self.command == "HEAD")

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        path = url.path
        state = self.state
        with state.lock:
            state.requests.append((self.command, self.path))
        body = self._body() if self.command in ("POST", "PUT", "PATCH") else b""
        if self.fail_status and (self.fail_paths is None or self.fail_paths.search(path)):
            self._error(self.fail_status, "UNKNOWN", "this registry is broken on purpose")
            return
        if path in ("/v2/", "/v2"):
            self._send(200, b"{}", content_type="application/json", head=self.command == "HEAD")
            return
        if m := BLOB.match(path):
            return self._blob(m["name"], m["digest"])
        if m := UPLOADS.match(path):
            return self._start_upload(m["name"], query, body)
        if m := UPLOAD.match(path):
            return self._upload(m["name"], m["uuid"], query, body)
        if m := MANIFEST.match(path):
            return self._manifest(m["name"], m["ref"], body)
        self._error(404, "NAME_UNKNOWN" if path.startswith("/v2/") else "UNSUPPORTED", f"no route {path}")

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    # -- blobs ------------------------------------------------------------------------
    def _blob(self, name: str, digest: str) -> None:
        if self.command not in ("GET", "HEAD"):
            return self._error(405, "UNSUPPORTED", "blobs are read-only here")
        with self.state.lock:
            data = self.state.blobs.get(digest)
        if data is None:
            return self._error(404, "BLOB_UNKNOWN", f"blob unknown: {digest}")
        self._send(200, data, headers={"Docker-Content-Digest": digest},
                   content_type="application/octet-stream", head=self.command == "HEAD", length=len(data))

    def _upload_headers(self, name: str, upload_id: str, size: int) -> dict[str, str]:
        return {"Location": f"/v2/{name}/blobs/uploads/{upload_id}", "Docker-Upload-UUID": upload_id,
                "Range": f"0-{max(size - 1, 0)}"}

    def _start_upload(self, name: str, query: dict[str, str], body: bytes) -> None:
        if self.command != "POST":
            return self._error(405, "UNSUPPORTED", "start an upload with POST")
        upload_id = str(uuid.uuid4())
        if "digest" in query:  # monolithic upload in one POST
            return self._finish(name, upload_id, query["digest"], bytearray(body))
        # a cross-repository mount (?mount=&from=) is answered like a fresh upload: the client uploads
        with self.state.lock:
            self.state.uploads[upload_id] = bytearray(body)
        self._send(202, headers=self._upload_headers(name, upload_id, len(body)))

    def _upload(self, name: str, upload_id: str, query: dict[str, str], body: bytes) -> None:
        with self.state.lock:
            buffer = self.state.uploads.get(upload_id)
        if buffer is None:
            return self._error(404, "BLOB_UPLOAD_UNKNOWN", f"upload unknown: {upload_id}")
        if self.command == "GET":
            return self._send(204, headers=self._upload_headers(name, upload_id, len(buffer)))
        if self.command == "DELETE":
            with self.state.lock:
                self.state.uploads.pop(upload_id, None)
            return self._send(204)
        if self.command == "PATCH":
            buffer.extend(body)
            return self._send(202, headers=self._upload_headers(name, upload_id, len(buffer)))
        if self.command == "PUT":
            buffer.extend(body)
            if "digest" not in query:
                return self._error(400, "DIGEST_INVALID", "PUT needs ?digest=")
            return self._finish(name, upload_id, query["digest"], buffer)
        self._error(405, "UNSUPPORTED", f"{self.command} on an upload")

    def _finish(self, name: str, upload_id: str, digest: str, data: bytearray) -> None:
        actual = sha256_digest(bytes(data))
        with self.state.lock:
            self.state.uploads.pop(upload_id, None)
            if actual != digest:
                self.state.digest_mismatches.append(f"{name}: claimed {digest}, uploaded {actual}")
        if actual != digest:
            return self._error(400, "DIGEST_INVALID", f"uploaded content has digest {actual}, not {digest}")
        with self.state.lock:
            self.state.blobs[digest] = bytes(data)
        self._send(201, headers={"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest})

    # -- manifests --------------------------------------------------------------------------
    def _manifest(self, name: str, ref: str, body: bytes) -> None:
        state = self.state
        if self.command == "PUT":
            media_type = self.headers.get("Content-Type", "").split(";")[0].strip()
            if media_type not in MANIFEST_TYPES + INDEX_TYPES:
                return self._error(400, "MANIFEST_INVALID", f"unsupported manifest type {media_type!r}")
            digest = sha256_digest(body)
            if ref.startswith("sha256:") and ref != digest:
                return self._error(400, "DIGEST_INVALID", f"manifest digest {digest} is not {ref}")
            stored = StoredManifest(media_type, body, digest)
            try:
                referenced, children = stored.blob_digests, stored.child_digests
            except (ValueError, KeyError, TypeError) as exc:
                return self._error(400, "MANIFEST_INVALID", f"unreadable manifest: {exc}")
            with state.lock:
                missing = ([d for d in referenced if d not in state.blobs]
                           + [d for d in children if (name, d) not in state.manifests])
                if not missing:
                    state.manifests[(name, ref)] = stored
                    state.manifests[(name, digest)] = stored
            if missing:
                return self._error(400, "MANIFEST_BLOB_UNKNOWN", f"unknown to registry: {missing[0]}")
            return self._send(201, headers={"Location": f"/v2/{name}/manifests/{digest}",
                                            "Docker-Content-Digest": digest})
        if self.command in ("GET", "HEAD"):
            with state.lock:
                stored = state.manifests.get((name, ref))
            if stored is None:
                return self._error(404, "MANIFEST_UNKNOWN", f"manifest unknown: {name}:{ref}")
            return self._send(200, stored.body, headers={"Docker-Content-Digest": stored.digest},
                              content_type=stored.media_type, head=self.command == "HEAD")
        self._error(405, "UNSUPPORTED", f"{self.command} on a manifest")


class FakeRegistry:
    """A threaded registry on 127.0.0.1 and a free port; `host` is what goes before `/ctxeval/...`."""

    def __init__(self, fail_status: int | None = None, fail_paths: str | None = None):
        self.state = RegistryState()
        self.fail_status = fail_status
        self.fail_paths = re.compile(fail_paths) if fail_paths else None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "FakeRegistry":
        handler = type("Handler", (_Handler,), {"state": self.state, "fail_status": self.fail_status,
                                              "fail_paths": self.fail_paths})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-registry", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeRegistry":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return self._server.server_address[1]

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- what was received ----------------------------------------------------------------------
    def manifest(self, name: str, ref: str) -> StoredManifest | None:
        with self.state.lock:
            return self.state.manifests.get((name, ref))

    def blob(self, digest: str) -> bytes | None:
        with self.state.lock:
            return self.state.blobs.get(digest)

    @property
    def requests(self) -> list[tuple[str, str]]:
        with self.state.lock:
            return list(self.state.requests)
