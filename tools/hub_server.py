"""A small, dependency-free, Hugging Face Hub-compatible HTTP server for tests.

Repos live in a folder: ``<root>/<type>s/<namespace>/<name>/`` holds ``repo.json`` (visibility, PR counter),
``refs.json`` (``refs/heads/main`` -> commit sha, ``refs/pr/1`` -> ...), ``commits/<sha>.json`` (parents, message,
date and the full file table of that commit) and ``objects/<hash>`` (file contents: LFS files under their sha256,
regular files under their git blob sha1). It answers the endpoints the real ``huggingface_hub`` client calls for
repo creation, info, tree listing, preupload, the LFS batch API (basic transfer), NDJSON commits, branches, refs,
commits listing and ``/resolve`` downloads (HEAD and GET, with Range support).

Use ``LocalHub`` from Python or run ``python tools/hub_server.py --root DIR --port N``.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import re
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from fnmatch import fnmatch
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

DEFAULT_TOKENS: dict[str, str] = {"hf_test_token": "test-user"}
LFS_PATTERNS = (
    "*.safetensors", "*.bin", "*.pt", "*.pth", "*.ckpt", "*.h5", "*.onnx", "*.msgpack", "*.npy", "*.npz",
    "*.pkl", "*.pickle", "*.gguf", "*.zip", "*.gz", "*.tar", "*.tgz", "*.parquet", "*.arrow", "*.model",
)
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
GITATTRIBUTES = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in LFS_PATTERNS).encode()
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
PLURAL = {"models": "model", "datasets": "dataset", "spaces": "space"}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
HEX40_RE = re.compile(r"^[0-9a-f]{40}$")
RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)
CHUNK = 1024 * 1024


class HubError(Exception):
    """An HTTP error answer: status, message and the ``X-Error-Code`` the client maps to an exception."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob with this content."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer file git would store for an LFS object."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _is_lfs_path(path: str, size: int, sample: bytes) -> bool:
    name = path.rsplit("/", 1)[-1]
    return any(fnmatch(name, p) for p in LFS_PATTERNS) or size >= LFS_SIZE_THRESHOLD or b"\0" in sample


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + f".{secrets.token_hex(4)}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(path)


class Repo:
    """One repository on disk."""

    def __init__(self, path: Path, repo_type: str, repo_id: str):
        self.path, self.repo_type, self.repo_id = path, repo_type, repo_id

    @property
    def meta(self) -> dict[str, Any]:
        return json.loads((self.path / "repo.json").read_text())

    @property
    def refs(self) -> dict[str, str]:
        return json.loads((self.path / "refs.json").read_text())

    def set_ref(self, ref: str, sha: str) -> None:
        refs = self.refs
        refs[ref] = sha
        _write_json(self.path / "refs.json", refs)

    def commit(self, sha: str) -> dict[str, Any]:
        return json.loads((self.path / "commits" / f"{sha}.json").read_text())

    def object_path(self, key: str) -> Path:
        return self.path / "objects" / key

    def put_object(self, key: str, data: bytes) -> None:
        target = self.object_path(key)
        if not target.exists():
            tmp = target.with_name(f"{key}.{secrets.token_hex(4)}.tmp")
            tmp.write_bytes(data)
            tmp.replace(target)

    def resolve(self, revision: str) -> str:
        """Branch, ``refs/...`` name, tag or (full or >=7 chars) commit sha -> full commit sha."""
        refs = self.refs
        for ref in (f"refs/heads/{revision}", revision, f"refs/tags/{revision}"):
            if ref in refs:
                return refs[ref]
        if re.fullmatch(r"[0-9a-f]{7,40}", revision):
            found = [p.stem for p in (self.path / "commits").glob(f"{revision}*.json")]
            if len(found) == 1:
                return found[0]
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def new_commit(self, parent: str | None, files: dict[str, dict], title: str, message: str) -> str:
        body = {"parents": [parent] if parent else [], "files": files, "title": title, "message": message,
                "date": _now(), "nonce": secrets.token_hex(8)}
        sha = hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest()
        body["id"] = sha
        _write_json(self.path / "commits" / f"{sha}.json", body)
        return sha


class HubStore:
    """All repos under a root folder, plus the logic of each endpoint (HTTP-free)."""

    def __init__(self, root: Path, tokens: dict[str, str]):
        self.root, self.tokens = Path(root), dict(tokens)
        self.secret = secrets.token_bytes(16)
        self.lock = threading.RLock()
        self.root.mkdir(parents=True, exist_ok=True)

    # --- repos -------------------------------------------------------------------------------------------------
    def repo_dir(self, repo_type: str, repo_id: str) -> Path:
        parts = repo_id.split("/")
        if len(parts) != 2 or not all(NAME_RE.match(p) and ".." not in p for p in parts):
            raise HubError(400, f"Invalid repo id: {repo_id!r}")
        return self.root / f"{repo_type}s" / parts[0] / parts[1]

    def get(self, repo_type: str, repo_id: str, user: str | None) -> Repo:
        try:
            path = self.repo_dir(repo_type, repo_id)
        except HubError:
            path = None
        if path is None or not (path / "repo.json").exists():
            raise HubError(404, f"Repository not found: {repo_id}", "RepoNotFound")
        repo = Repo(path, repo_type, repo_id)
        if repo.meta.get("private") and user is None:
            raise HubError(401, f"Repository not found: {repo_id}", "RepoNotFound")
        return repo

    def create(self, repo_type: str, repo_id: str, private: bool) -> Repo:
        path = self.repo_dir(repo_type, repo_id)
        with self.lock:
            if (path / "repo.json").exists():
                raise HubError(409, "You already created this repo")
            (path / "commits").mkdir(parents=True, exist_ok=True)
            (path / "objects").mkdir(exist_ok=True)
            _write_json(path / "refs.json", {})
            repo = Repo(path, repo_type, repo_id)
            repo.put_object(git_blob_sha1(GITATTRIBUTES), GITATTRIBUTES)
            entry = {"oid": git_blob_sha1(GITATTRIBUTES), "size": len(GITATTRIBUTES), "sha256": None}
            sha = repo.new_commit(None, {".gitattributes": entry}, "initial commit", "")
            repo.set_ref("refs/heads/main", sha)
            _write_json(path / "repo.json", {"private": private, "createdAt": _now(), "prCount": 0})
            return repo

    def delete(self, repo_type: str, repo_id: str) -> None:
        path = self.repo_dir(repo_type, repo_id)
        if not (path / "repo.json").exists():
            raise HubError(404, f"Repository not found: {repo_id}", "RepoNotFound")
        shutil.rmtree(path)

    # --- commits -----------------------------------------------------------------------------------------------
    def branch_ref(self, repo: Repo, revision: str) -> str:
        """The ref a commit to ``revision`` moves: a branch or an existing ``refs/pr/N``."""
        refs = repo.refs
        for ref in (f"refs/heads/{revision}", revision):
            if ref in refs and (ref.startswith("refs/heads/") or ref.startswith("refs/pr/")):
                return ref
        raise HubError(404, f"Invalid rev id: {revision} (not a branch)", "RevisionNotFound")

    def apply_commit(self, repo: Repo, revision: str, lines: list[dict], create_pr: bool) -> tuple[str, int | None]:
        with self.lock:
            ref = self.branch_ref(repo, revision)
            head = repo.refs[ref]
            header: dict[str, Any] = {}
            files = dict(repo.commit(head)["files"])
            for line in lines:
                key, value = line.get("key"), line.get("value") or {}
                if key == "header":
                    header = value
                elif key == "file":
                    data = base64.b64decode(value["content"]) if value.get("encoding") == "base64" \
                        else str(value["content"]).encode()
                    oid = git_blob_sha1(data)
                    repo.put_object(oid, data)
                    files[self._clean_path(value["path"])] = {"oid": oid, "size": len(data), "sha256": None}
                elif key == "lfsFile":
                    sha = str(value.get("oid", ""))
                    obj = repo.object_path(sha)
                    if not re.fullmatch(r"[0-9a-f]{64}", sha) or not obj.exists():
                        raise HubError(422, f"LFS object {sha} for {value.get('path')} was never uploaded")
                    size = obj.stat().st_size
                    if value.get("size") is not None and int(value["size"]) != size:
                        raise HubError(422, f"LFS object {sha} has size {size}, not {value['size']}")
                    pointer = lfs_pointer(sha, size)
                    files[self._clean_path(value["path"])] = {"oid": git_blob_sha1(pointer), "size": size,
                                                              "sha256": sha, "pointerSize": len(pointer)}
                elif key == "deletedFile":
                    path = self._clean_path(value["path"])
                    if path not in files:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                    del files[path]
                elif key == "deletedFolder":
                    prefix = self._clean_path(value["path"]).rstrip("/") + "/"
                    files = {p: e for p, e in files.items() if not p.startswith(prefix)}
                else:
                    raise HubError(400, f"Unknown commit line key: {key!r}")
            parent = header.get("parentCommit")
            if parent and not create_pr and not head.startswith(parent):
                raise HubError(412, f"A commit has happened since {parent}: head is now {head}")
            title = str(header.get("summary") or "update")
            if create_pr:
                base = repo.resolve(parent) if parent else head
                sha = repo.new_commit(base, files, title, str(header.get("description") or ""))
                meta = repo.meta
                meta["prCount"] = num = int(meta.get("prCount", 0)) + 1
                _write_json(repo.path / "repo.json", meta)
                repo.set_ref(f"refs/pr/{num}", sha)
                return sha, num
            sha = repo.new_commit(head, files, title, str(header.get("description") or ""))
            repo.set_ref(ref, sha)
            return sha, None

    @staticmethod
    def _clean_path(path: str) -> str:
        parts = [p for p in str(path).split("/") if p not in ("", ".")]
        if not parts or ".." in parts:
            raise HubError(400, f"Invalid path in repo: {path!r}")
        return "/".join(parts)

    def upload_sig(self, repo: Repo, oid: str) -> str:
        return hmac.new(self.secret, f"{repo.repo_type}:{repo.repo_id}:{oid}".encode(), hashlib.sha256).hexdigest()

    def corrupt(self, repo_type: str, repo_id: str, path: str, revision: str) -> None:
        repo = self.get(repo_type, repo_id, user="admin")
        entry = repo.commit(repo.resolve(revision))["files"].get(path)
        if entry is None:
            raise KeyError(f"{path} not in {repo_id}@{revision}")
        obj = repo.object_path(entry["sha256"] or entry["oid"])
        data = bytearray(obj.read_bytes())
        if not data:
            raise ValueError(f"cannot corrupt empty file {path}")
        for i in range(min(len(data), 64)):
            data[i] ^= 0xFF
        obj.write_bytes(bytes(data))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], store: HubStore):
        super().__init__(address, _Handler)
        self.store = store
        self.faults: dict[tuple[str, str, str], int] = {}
        self.request_log: list[tuple[str, str, dict[str, str]]] = []
        self.open_sockets: set[socket.socket] = set()

    def process_request(self, request: Any, client_address: Any) -> None:
        self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.open_sockets.discard(request)
        super().shutdown_request(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 60

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr logging
        pass

    # --- plumbing ----------------------------------------------------------------------------------------------
    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        self.raw_path = split.path
        self.server.request_log.append((self.command, self.path, dict(self.headers.items())))
        try:
            self.body = self._read_body()
            self._route()
        except HubError as err:
            self._error(err)
        except (ValueError, KeyError, json.JSONDecodeError) as err:
            self._error(HubError(400, f"Bad request: {err}"))

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _dispatch

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _json_body(self) -> Any:
        return json.loads(self.body or b"{}")

    @property
    def base_url(self) -> str:
        return f"http://{self.headers.get('Host') or '%s:%d' % self.server.server_address[:2]}"

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(data).encode(), headers)

    def _error(self, err: HubError) -> None:
        headers = {"X-Error-Message": err.message.encode("ascii", "replace").decode(), **err.headers}
        if err.code:
            headers["X-Error-Code"] = err.code
        self._json({"error": err.message}, err.status, headers)

    def _user(self, required: bool = False) -> str | None:
        auth = self.headers.get("Authorization", "")
        if not auth:
            if required:
                raise HubError(401, "You must be authenticated (send a token: Authorization: Bearer hf_...) to write")
            return None
        token = auth.split(" ", 1)[1].strip() if " " in auth else auth
        user = self.server.store.tokens.get(token)
        if user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        return user

    # --- routing -----------------------------------------------------------------------------------------------
    def _route(self) -> None:
        path, method, store = self.raw_path, self.command, self.server.store
        if path == "/api/whoami-v2" and method == "GET":
            return self._whoami()
        if path == "/api/repos/create" and method == "POST":
            return self._create_repo()
        if path == "/api/repos/delete" and method == "DELETE":
            user = self._user(required=True)
            data = self._json_body()
            rtype = data.get("type") or "model"
            store.delete(rtype, f"{data.get('organization') or user}/{data['name']}")
            return self._json({})
        if path == "/api/validate-yaml" and method == "POST":
            return self._json({"errors": [], "warnings": []})
        if path == "/api/agent-harnesses" and method == "GET":
            return self._json({"standardEnvVars": [], "harnesses": {}})
        m = re.fullmatch(r"/api/(models|datasets|spaces)/([^/]+/[^/]+)(/.*)?", path)
        if m:
            return self._api(PLURAL[m[1]], unquote(m[2]), m[3] or "")
        lfs_re = r"/(?:(datasets|spaces)/)?([^/]+/[^/]+?)\.git/info/lfs/objects/(batch|verify|upload/[0-9a-f]{64})"
        m = re.fullmatch(lfs_re, path)
        if m:
            return self._lfs(PLURAL[m[1]] if m[1] else "model", unquote(m[2]), m[3])
        m = re.fullmatch(r"/(?:(datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if m and method in ("GET", "HEAD"):
            rev, file = unquote(m[3]), m[4]
            if rev == "refs" and file.count("/") >= 2:  # unquoted "refs/pr/1"
                kind, num, file = file.split("/", 2)
                rev = f"refs/{kind}/{num}"
            return self._resolve(PLURAL[m[1]] if m[1] else "model", unquote(m[2]), rev, unquote(file))
        raise HubError(404, f"No route for {method} {path}")

    def _api(self, rtype: str, repo_id: str, rest: str) -> None:
        method, store = self.command, self.server.store
        segs = [unquote(s) for s in rest.split("/")[1:]] if rest else []
        if method == "GET" and (not segs or segs[0] == "revision"):
            repo = store.get(rtype, repo_id, self._user())
            return self._info(repo, segs[1] if len(segs) > 1 else "main")
        if method == "GET" and segs and segs[0] == "tree" and len(segs) >= 2:
            repo = store.get(rtype, repo_id, self._user())
            return self._tree(repo, segs[1], "/".join(segs[2:]))
        if method == "GET" and segs == ["refs"]:
            return self._refs(store.get(rtype, repo_id, self._user()))
        if method == "GET" and segs and segs[0] == "commits" and len(segs) == 2:
            return self._commits(store.get(rtype, repo_id, self._user()), segs[1])
        if method == "POST" and len(segs) == 2 and segs[0] in ("preupload", "commit", "branch"):
            user = self._user(required=True)
            repo = store.get(rtype, repo_id, user)
            return getattr(self, f"_{segs[0]}")(repo, segs[1])
        raise HubError(404, f"No route for {method} {self.raw_path}")

    # --- endpoints ---------------------------------------------------------------------------------------------
    def _whoami(self) -> None:
        user = self._user(required=True)
        self._json({"type": "user", "id": hashlib.sha1(str(user).encode()).hexdigest()[:24], "name": user,
                    "fullname": user, "email": None, "emailVerified": False, "isPro": False, "orgs": [],
                    "auth": {"type": "access_token", "accessToken": {"displayName": "local", "role": "write"}}})

    def _create_repo(self) -> None:
        user = self._user(required=True)
        data = self._json_body()
        rtype = data.get("type") or "model"
        if rtype not in URL_PREFIX:
            raise HubError(400, f"Unsupported repo type {rtype!r}")
        repo_id = f"{data.get('organization') or user}/{data.get('name')}"
        url = f"{self.base_url}/{URL_PREFIX[rtype]}{repo_id}"
        private = bool(data.get("private")) or data.get("visibility") == "private"
        try:
            self.server.store.create(rtype, repo_id, private)
        except HubError as err:
            if err.status == 409:
                return self._json({"error": err.message, "url": url}, 409)
            raise
        self._json({"url": url, "name": repo_id, "id": repo_id})

    def _info(self, repo: Repo, revision: str) -> None:
        sha = repo.resolve(revision)
        commit = repo.commit(sha)
        blobs = self.query.get("blobs", "").lower() in ("1", "true")
        siblings = []
        for path, e in sorted(commit["files"].items()):
            sib: dict[str, Any] = {"rfilename": path}
            if blobs:
                sib.update(size=e["size"], blobId=e["oid"])
                if e["sha256"]:
                    sib["lfs"] = {"size": e["size"], "sha256": e["sha256"], "pointerSize": e["pointerSize"]}
            siblings.append(sib)
        meta = repo.meta
        self._json({"_id": sha[:24], "id": repo.repo_id, "modelId": repo.repo_id, "author": repo.repo_id.split("/")[0],
                    "sha": sha, "lastModified": commit["date"], "createdAt": meta["createdAt"],
                    "private": bool(meta.get("private")), "disabled": False, "gated": False, "downloads": 0,
                    "likes": 0, "tags": [], "siblings": siblings,
                    "usedStorage": sum(e["size"] for e in commit["files"].values())})

    def _tree(self, repo: Repo, revision: str, folder: str) -> None:
        files = repo.commit(repo.resolve(revision))["files"]
        recursive = self.query.get("recursive", "").lower() in ("1", "true")
        prefix = folder.strip("/") + "/" if folder.strip("/") else ""
        if prefix and not any(p.startswith(prefix) for p in files):
            raise HubError(404, f"Folder not found: {folder}", "EntryNotFound")
        out: dict[str, dict] = {}
        for path, e in sorted(files.items()):
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix):].split("/")
            for depth in range(1, len(parts)):
                if depth > 1 and not recursive:
                    break
                d = prefix + "/".join(parts[:depth])
                out.setdefault(d, {"type": "directory", "path": d,
                                   "oid": hashlib.sha1(f"{d}:{sorted(files)}".encode()).hexdigest()})
            if len(parts) == 1 or recursive:
                item: dict[str, Any] = {"type": "file", "path": path, "oid": e["oid"], "size": e["size"]}
                if e["sha256"]:
                    item["lfs"] = {"oid": e["sha256"], "size": e["size"], "pointerSize": e["pointerSize"]}
                out[path] = item
        self._json(list(out.values()))

    def _refs(self, repo: Repo) -> None:
        def fmt(prefix: str) -> list[dict]:
            return [{"name": r[len(prefix):], "ref": r, "targetCommit": s}
                    for r, s in sorted(repo.refs.items()) if r.startswith(prefix)]
        data = {"branches": fmt("refs/heads/"), "converts": fmt("refs/convert/"), "tags": fmt("refs/tags/")}
        if self.query.get("include_prs"):
            data["pullRequests"] = fmt("refs/pr/")
        self._json(data)

    def _commits(self, repo: Repo, revision: str) -> None:
        out, sha = [], repo.resolve(revision)
        while sha:
            c = repo.commit(sha)
            out.append({"id": sha, "title": c["title"], "message": c["message"], "date": c["date"],
                        "authors": [{"user": "local"}]})
            sha = c["parents"][0] if c["parents"] else None
        self._json(out)

    def _preupload(self, repo: Repo, revision: str) -> None:
        files = repo.commit(repo.resolve(revision))["files"]
        out = []
        for f in self._json_body().get("files", []):
            sample = base64.b64decode(f.get("sample") or "")
            lfs = _is_lfs_path(f["path"], int(f.get("size") or 0), sample)
            existing = files.get(f["path"])
            oid = None
            if existing is not None:
                oid = existing["sha256"] if existing["sha256"] else existing["oid"]
            out.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                        "oid": oid})
        self._json({"files": out, "commitOid": repo.resolve(revision)})

    def _commit(self, repo: Repo, revision: str) -> None:
        lines = [json.loads(line) for line in self.body.splitlines() if line.strip()]
        create_pr = self.query.get("create_pr") in ("1", "true", "True")
        sha, pr = self.server.store.apply_commit(repo, revision, lines, create_pr)
        repo_url = f"{self.base_url}/{URL_PREFIX[repo.repo_type]}{repo.repo_id}"
        self._json({"success": True, "commitOid": sha, "commitUrl": f"{repo_url}/commit/{sha}",
                    "pullRequestUrl": f"{repo_url}/discussions/{pr}" if pr else None})

    def _branch(self, repo: Repo, branch: str) -> None:
        start = self._json_body().get("startingPoint") or "main"
        with self.server.store.lock:
            if f"refs/heads/{branch}" in repo.refs:
                raise HubError(409, f"Branch {branch} already exists")
            if not NAME_RE.match(branch.replace("/", "-")):
                raise HubError(400, f"Invalid branch name {branch!r}")
            repo.set_ref(f"refs/heads/{branch}", repo.resolve(start))
        self._json({})

    def _lfs(self, rtype: str, repo_id: str, action: str) -> None:
        store = self.server.store
        if action.startswith("upload/"):
            repo = store.get(rtype, repo_id, user="uploader")
            oid = action.split("/", 1)[1]
            if not hmac.compare_digest(self.query.get("sig", ""), store.upload_sig(repo, oid)):
                raise HubError(403, "Invalid or missing upload signature")
            if hashlib.sha256(self.body).hexdigest() != oid:
                raise HubError(400, f"Uploaded content does not match its sha256 {oid}")
            repo.put_object(oid, self.body)
            return self._send(200)
        user = self._user(required=True)
        repo = store.get(rtype, repo_id, user)
        data = self._json_body()
        if action == "verify":
            obj = repo.object_path(str(data.get("oid")))
            if not obj.exists() or obj.stat().st_size != int(data.get("size", -1)):
                raise HubError(404, f"LFS object {data.get('oid')} not found or wrong size")
            return self._json({})
        if data.get("operation") != "upload":
            raise HubError(400, "Only the 'upload' operation is supported by this server")
        objects = []
        git_url = f"{self.base_url}/{URL_PREFIX[rtype]}{repo_id}.git/info/lfs/objects"
        for obj in data.get("objects", []):
            oid, size = str(obj["oid"]), int(obj["size"])
            item: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if not re.fullmatch(r"[0-9a-f]{64}", oid):
                item["error"] = {"code": 422, "message": f"Invalid oid {oid}"}
            elif not (repo.object_path(oid).exists() and repo.object_path(oid).stat().st_size == size):
                item["actions"] = {
                    "upload": {"href": f"{git_url}/upload/{oid}?sig={store.upload_sig(repo, oid)}", "header": {}},
                    "verify": {"href": f"{git_url}/verify", "header": {}},
                }
            objects.append(item)
        self._json({"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
                   headers={"Content-Type": "application/vnd.git-lfs+json"})

    def _resolve(self, rtype: str, repo_id: str, revision: str, file: str) -> None:
        repo = self.server.store.get(rtype, repo_id, self._user())
        sha = repo.resolve(revision)
        entry = repo.commit(sha)["files"].get(file)
        if entry is None:
            raise HubError(404, f"Entry not found: {file} at {revision}", "EntryNotFound", {"X-Repo-Commit": sha})
        obj = repo.object_path(entry["sha256"] or entry["oid"])
        size = obj.stat().st_size
        headers = {"X-Repo-Commit": sha, "Accept-Ranges": "bytes", "ETag": f'"{entry["sha256"] or entry["oid"]}"'}
        if entry["sha256"]:
            headers.update({"X-Linked-Etag": f'"{entry["sha256"]}"', "X-Linked-Size": str(entry["size"])})
        start, end, status = 0, size - 1, 200
        rng = self.headers.get("Range")
        if rng:
            m = RANGE_RE.match(rng)
            if not m or (not m[1] and not m[2]):
                raise HubError(416, f"Bad range {rng}", headers={"Content-Range": f"bytes */{size}"})
            if m[1]:
                start, end = int(m[1]), min(int(m[2]) if m[2] else size - 1, size - 1)
            else:
                start, end = max(size - int(m[2]), 0), size - 1
            if start >= size or start > end:
                raise HubError(416, f"Range {rng} not satisfiable for size {size}",
                               headers={"Content-Range": f"bytes */{size}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = end - start + 1
        cut = self.server.faults.pop((rtype, repo_id, file), None) if self.command == "GET" else None
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        sent = 0
        with obj.open("rb") as f:
            f.seek(start)
            while sent < length:
                n = min(CHUNK, length - sent) if cut is None else min(CHUNK, length - sent, cut - sent)
                if n <= 0:
                    break
                chunk = f.read(n)
                self.wfile.write(chunk)
                sent += len(chunk)
        if cut is not None and sent < length:  # simulated network failure: drop the connection mid-body
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)


class LocalHub:
    """A Hub-compatible server on 127.0.0.1 (port 0 = any free port), served from a thread.

    >>> with LocalHub() as hub:  # doctest: +SKIP
    ...     os.environ["HF_ENDPOINT"] = hub.url
    """

    def __init__(self, root: str | Path | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 tokens: dict[str, str] | None = None):
        self._tmp = None if root is not None else tempfile.mkdtemp(prefix="localhub-")
        self.root = Path(root if root is not None else self._tmp)
        self.host, self.port = host, port
        self.store = HubStore(self.root, tokens or DEFAULT_TOKENS)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("LocalHub is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def token(self) -> str:
        """A valid write token."""
        return next(iter(self.store.tokens))

    @property
    def user(self) -> str:
        return self.store.tokens[self.token]

    @property
    def requests(self) -> list[tuple[str, str, dict[str, str]]]:
        """(method, raw path, headers) of every request served so far."""
        return self._server.request_log if self._server else []

    def start(self) -> LocalHub:
        self._server = _Server((self.host, self.port), self.store)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="LocalHub",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            for sock in list(self._server.open_sockets):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._server.server_close()
            self._server = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def corrupt(self, repo_id: str, path: str, *, revision: str = "main", repo_type: str = "model") -> None:
        """Flip the stored bytes of ``path`` (same length) while the Hub keeps advertising the original hash."""
        self.store.corrupt(repo_type, repo_id, path, revision)

    def interrupt_next_download(self, repo_id: str, path: str, after_bytes: int, *, repo_type: str = "model") -> None:
        """Make the next GET of ``path`` drop the connection after ``after_bytes`` bytes of body."""
        assert self._server is not None, "start the hub first"
        self._server.faults[(repo_type, repo_id, path)] = after_bytes

    def file_url(self, repo_id: str, path: str, revision: str = "main", *, repo_type: str = "model") -> str:
        return f"{self.url}/{URL_PREFIX[repo_type]}{repo_id}/resolve/{quote(revision, safe='')}/{quote(path)}"


def iter_files(hub: LocalHub, repo_id: str, revision: str = "main", repo_type: str = "model") -> Iterator[str]:
    """Paths of the files of a repo at a revision (server-side view, for tests)."""
    repo = hub.store.get(repo_type, repo_id, user="admin")
    yield from sorted(repo.commit(repo.resolve(revision))["files"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a local Hugging Face Hub-compatible API.")
    parser.add_argument("--root", required=True, help="folder holding the repos")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", action="append", metavar="TOKEN[=USER]",
                        help="accepted token (repeatable); default hf_test_token=test-user")
    args = parser.parse_args(argv)
    tokens = dict((t.split("=", 1) + ["test-user"])[:2] for t in args.token) if args.token else None
    hub = LocalHub(args.root, host=args.host, port=args.port, tokens=tokens).start()
    print(f"LocalHub serving {hub.root} at {hub.url} (export HF_ENDPOINT={hub.url})", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        hub.stop()


if __name__ == "__main__":
    main()
