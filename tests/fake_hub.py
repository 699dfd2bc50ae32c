"""A small in-process stand-in for the Hugging Face Hub's HTTP API, for offline tests.

It implements what the real ``huggingface_hub`` client (2.x, with Xet disabled) sends for
``whoami``, ``create_repo``, ``create_branch``, ``create_commit``/``upload_folder`` (README
validation, preupload, the Git LFS batch API with "basic" transfers, LFS upload and verify, the
NDJSON commit), ``repo_info``, ``list_repo_tree`` and file downloads (``/resolve/`` with the
``ETag``/``X-Repo-Commit``/``X-Linked-*`` headers, LFS files redirected to a separate "CDN"
origin, as on the real Hub). It stores exactly the bytes it receives and serves them back.

Two ``ThreadingHTTPServer`` listeners on 127.0.0.1 with random ports: the Hub API and the
storage ("CDN") where LFS objects are uploaded and downloaded through signed URLs. The CDN
records any ``Authorization`` header it receives: the client must never send the token there.

Not modelled: Xet storage (tests set ``HF_HUB_DISABLE_XET``), multipart LFS uploads, pull
requests, tags, pagination, rate limits, gated repos, commit history endpoints, fine-grained
token scopes, the Hub's full metadata validation.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import itertools
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import yaml

# The start of the .gitattributes the Hub puts into every new model repo.
DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in ("*.bin", "*.safetensors", "*.pt", "*.pth", "*.ckpt", "*.h5", "*.onnx",
                    "*.msgpack", "*.model", "*.npy", "*.npz", "*.pkl", "*.zip", "*.tar.*")
)
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024  # larger files must go through LFS


def git_blob_oid(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass
class StoredFile:
    content: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def blob_oid(self) -> str:
        """Git's id of what git stores: the file, or for LFS files the pointer file."""
        stored = lfs_pointer(self.sha256, len(self.content)) if self.lfs else self.content
        return git_blob_oid(stored)

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.blob_oid


@dataclass
class Commit:
    oid: str
    parent: Optional[str]
    message: str
    description: str
    files: dict  # path -> StoredFile (the full tree at this commit)
    date: str


@dataclass
class Repo:
    repo_id: str
    private: bool
    branches: dict = field(default_factory=dict)  # name -> commit oid
    commits: dict = field(default_factory=dict)  # oid -> Commit
    created_at: str = ""

    @property
    def namespace(self) -> str:
        return self.repo_id.split("/")[0]

    def resolve(self, revision: str) -> Optional[Commit]:
        oid = self.branches.get(revision, revision)
        return self.commits.get(oid)


class HubError(Exception):
    def __init__(self, status: int, message: str, code: Optional[str] = None,
                 headers: Optional[dict] = None, body: Optional[dict] = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}
        self.body = body or {}


class FakeHub:
    """State plus two HTTP listeners. Use as a context manager or call start()/stop()."""

    def __init__(self):
        self.lock = threading.RLock()
        self.users: dict[str, dict] = {}  # token -> {"name", "orgs", "role"}
        self.repos: dict[str, Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}  # sha256 -> content
        self.requests: list[tuple[str, str, str]] = []  # (server, method, path), in order
        self.cdn_auth_headers: list[str] = []  # paths of CDN requests that carried Authorization
        self._faults: list[dict] = []
        self._key = secrets.token_bytes(16)
        self._counter = itertools.count(1)
        self._servers: list[ThreadingHTTPServer] = []
        self.stopped = True
        self.endpoint = self.cdn_endpoint = ""  # set by start()

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> "FakeHub":
        self.stopped = False
        for role in ("hub", "cdn"):
            server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self, role))
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                             daemon=True, name=f"fake-hub-{role}").start()
            self._servers.append(server)
        self.endpoint, self.cdn_endpoint = ("http://127.0.0.1:%d" % s.server_address[1] for s in self._servers)
        return self

    def stop(self) -> None:
        """Stop listening; connections still open get no more answers."""
        self.stopped = True
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()

    def __enter__(self) -> "FakeHub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- test helpers --------------------------------------------------------------------

    def add_user(self, name: str, token: str, orgs: tuple = (), role: str = "write") -> None:
        with self.lock:
            self.users[token] = {"name": name, "orgs": list(orgs), "role": role}

    def fail_next(self, method: str, path_pattern: str, action="drop", times: int = 1) -> None:
        """Make the next ``times`` requests matching ``method`` and the regex ``path_pattern``
        fail: ``action`` is "drop" (close the connection after reading the request, no
        response) or an HTTP status code."""
        with self.lock:
            self._faults.append({"method": method, "pattern": re.compile(path_pattern),
                                 "action": action, "left": times})

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        with self.lock:
            commit = self.repos[repo_id].resolve(revision)
            return {path: f.content for path, f in commit.files.items()}

    def head(self, repo_id: str, revision: str = "main") -> str:
        with self.lock:
            return self.repos[repo_id].branches[revision]

    def commit_messages(self, repo_id: str) -> list[str]:
        with self.lock:
            return [c.message + "\n" + c.description for c in self.repos[repo_id].commits.values()]

    def all_stored_bytes(self) -> list[bytes]:
        """Everything the server keeps: file contents, LFS objects, commit messages, repo ids."""
        with self.lock:
            out = list(self.lfs_objects.values())
            for repo in self.repos.values():
                out.append(repo.repo_id.encode())
                for commit in repo.commits.values():
                    out.append((commit.message + commit.description).encode())
                    out.extend(f.content for f in commit.files.values())
            return out

    def count(self, method: str, path_pattern: str, server: str = "hub") -> int:
        pattern = re.compile(path_pattern)
        with self.lock:
            return sum(1 for s, m, p in self.requests if s == server and m == method and pattern.search(p))

    # --- repo operations (also used directly by tests to seed state) ---------------------

    def create_repo(self, repo_id: str, private: bool = False) -> Repo:
        with self.lock:
            repo = Repo(repo_id, private, created_at=_now())
            self.repos[repo_id] = repo
            self._commit(repo, "main", "initial commit", "",
                         {".gitattributes": StoredFile(DEFAULT_GITATTRIBUTES.encode(), lfs=False)})
            return repo

    def seed(self, repo_id: str, folder, private: bool = False) -> Repo:
        """Create ``repo_id`` holding the files of a local folder (a test's starting state)."""
        from pathlib import Path

        with self.lock:
            repo = self.create_repo(repo_id, private=private)
            files = dict(repo.resolve("main").files)
            for path in sorted(Path(folder).rglob("*")):
                if path.is_file():
                    content, name = path.read_bytes(), path.relative_to(folder).as_posix()
                    lfs = self.is_lfs_path(files, name, len(content), content[:512])
                    files[name] = StoredFile(content, lfs)
                    if lfs:
                        self.lfs_objects[hashlib.sha256(content).hexdigest()] = content
            self._commit(repo, "main", "Upload folder", "", files)
            return repo

    def _commit(self, repo: Repo, branch: str, message: str, description: str, files: dict) -> Commit:
        parent = repo.branches.get(branch)
        digest = hashlib.sha1()
        digest.update(f"{repo.repo_id}\n{parent}\n{message}\n{next(self._counter)}\n".encode())
        for path in sorted(files):
            digest.update(f"{path} {files[path].blob_oid}\n".encode())
        commit = Commit(digest.hexdigest(), parent, message, description, dict(files), _now())
        repo.commits[commit.oid] = commit
        repo.branches[branch] = commit.oid
        return commit

    def is_lfs_path(self, files: dict, path: str, size: int, sample: bytes) -> bool:
        attributes = files.get(".gitattributes")
        patterns = [line.split()[0] for line in (attributes.content.decode() if attributes else "").splitlines()
                    if "filter=lfs" in line]
        name = path.rsplit("/", 1)[-1]
        return (any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(path, p) for p in patterns)
                or size >= LFS_SIZE_THRESHOLD or b"\0" in sample)

    # --- signing of CDN urls -------------------------------------------------------------

    def sign(self, action: str, oid: str) -> str:
        return hmac.new(self._key, f"{action}:{oid}".encode(), "sha256").hexdigest()

    def cdn_url(self, action: str, oid: str, size: int) -> str:
        path = "upload" if action == "upload" else "blobs"
        return f"{self.cdn_endpoint}/{path}/{oid}?size={size}&sig={self.sign(action, oid)}"

    def take_fault(self, method: str, path: str):
        with self.lock:
            for fault in self._faults:
                if fault["left"] > 0 and fault["method"] == method and fault["pattern"].search(path):
                    fault["left"] -= 1
                    return fault["action"]
        return None


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


# --- HTTP -------------------------------------------------------------------------------


def _make_handler(hub: FakeHub, role: str):
    class Handler(_Handler):
        pass

    Handler.hub, Handler.role = hub, role
    return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: FakeHub
    role: str

    def log_message(self, format, *args):  # quiet
        pass

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    # --- plumbing ------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.body = self._read_body()
        with self.hub.lock:
            self.hub.requests.append((self.role, method, url.path))
        if self.role == "cdn" and self.headers.get("Authorization"):
            with self.hub.lock:
                self.hub.cdn_auth_headers.append(url.path)
        fault = "drop" if self.hub.stopped else self.hub.take_fault(method, url.path)
        if fault == "drop":
            self.close_connection = True  # no response at all: the client sees a broken connection
            return
        try:
            if fault is not None:
                raise HubError(int(fault), "Internal Error - We're working hard to fix this as soon as possible!")
            routes = _CDN_ROUTES if self.role == "cdn" else _HUB_ROUTES
            for route_method, pattern, handler in routes:
                if route_method == method or (route_method == "GET" and method == "HEAD"):
                    match = pattern.fullmatch(url.path)
                    if match:
                        params = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                        return handler(self, **params)
            raise HubError(404, f"Not found: {method} {url.path}")
        except HubError as err:
            headers = dict(err.headers)
            if err.code:
                headers["X-Error-Code"] = err.code
            headers["X-Error-Message"] = err.message
            self._send(err.status, {"error": err.message, **err.body}, headers)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body=b"", headers: Optional[dict] = None,
              content_type: str = "application/json") -> None:
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self) -> dict:
        try:
            return json.loads(self.body or b"{}")
        except ValueError:
            raise HubError(400, "Invalid JSON body")

    # --- auth ----------------------------------------------------------------------------

    def _user(self, required: bool = False) -> Optional[dict]:
        header = self.headers.get("Authorization", "")
        if not header:
            if required:
                raise HubError(401, "Invalid username or password.")
            return None
        token = header.removeprefix("Bearer ").strip()
        user = self.hub.users.get(token)
        if user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        return user

    def _can_write(self, user: Optional[dict], namespace: str) -> bool:
        return bool(user) and user["role"] == "write" and namespace in (user["name"], *user["orgs"])

    def _can_read(self, user: Optional[dict], repo: Repo) -> bool:
        return not repo.private or (bool(user) and repo.namespace in (user["name"], *user["orgs"]))

    def _repo(self, repo_id: str, write: bool = False) -> Repo:
        user = self._user(required=write)
        repo = self.hub.repos.get(repo_id)
        if repo is None or not self._can_read(user, repo):
            raise HubError(401 if user is None else 404, "Repository not found", "RepoNotFound")
        if write and not self._can_write(user, repo.namespace):
            raise HubError(403, f"You don't have the rights to write to {repo_id}. Ask the owner for "
                                "write access, or push to a repo in your own namespace.")
        return repo

    def _commit_of(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    # --- Hub API -------------------------------------------------------------------------

    def whoami(self):
        user = self._user(required=True)
        self._send(200, {"type": "user", "name": user["name"], "fullname": user["name"],
                         "orgs": [{"type": "org", "name": o} for o in user["orgs"]],
                         "auth": {"type": "access_token",
                                  "accessToken": {"displayName": "test", "role": user["role"]}}})

    def create_repo(self):
        user = self._user(required=True)
        payload = self._json()
        if payload.get("type", "model") != "model":
            raise HubError(400, "Only model repos are supported by this fake Hub")
        namespace = payload.get("organization") or user["name"]
        repo_id = f"{namespace}/{payload['name']}"
        with self.hub.lock:
            if not self._can_write(user, namespace):
                raise HubError(403, f"You don't have the rights to create a model under the namespace "
                                    f'"{namespace}"')
            if repo_id in self.hub.repos:
                # The client reads the url of the existing repo from this answer (exist_ok=True).
                raise HubError(409, "You already created this model repo",
                               body={"url": f"{self.hub.endpoint}/{repo_id}"})
            private = payload.get("visibility") == "private" or bool(payload.get("private"))
            self.hub.create_repo(repo_id, private=private)
        self._send(200, {"url": f"{self.hub.endpoint}/{repo_id}", "name": repo_id, "id": repo_id})

    def create_branch(self, repo_id, branch):
        with self.hub.lock:
            repo = self._repo(repo_id, write=True)
            if branch in repo.branches:
                raise HubError(409, f"Reference already exists: refs/heads/{branch}")
            start = self._json().get("startingPoint") or "main"
            repo.branches[branch] = self._commit_of(repo, start).oid
        self._send(200, {})

    def validate_yaml(self):
        content = self._json().get("content", "")
        match = re.match(r"^---\r?\n(.*?)\r?\n---\r?\n", content, re.S)
        errors = []
        if match:
            try:
                metadata = yaml.safe_load(match.group(1))
                if not isinstance(metadata, (dict, type(None))):
                    errors.append("metadata must be a mapping")
                elif metadata and "model-index" in metadata:
                    index = metadata["model-index"]
                    if not (isinstance(index, list) and all("name" in m and "results" in m for m in index)):
                        errors.append('"model-index" must be a list of {name, results}')
            except yaml.YAMLError as err:
                errors.append(f"YAML error: {err}")
        if errors:
            self._send(400, {"errors": [{"message": e} for e in errors], "warnings": []})
        else:
            self._send(200, {"errors": [], "warnings": []})

    def repo_info(self, repo_id, revision="main"):
        with self.hub.lock:
            repo = self._repo(repo_id)
            commit = self._commit_of(repo, revision)
            self._send(200, {
                "id": repo_id, "modelId": repo_id, "author": repo.namespace, "sha": commit.oid,
                "private": repo.private, "disabled": False, "gated": False,
                "lastModified": commit.date, "createdAt": repo.created_at, "tags": [],
                "siblings": [{"rfilename": path} for path in sorted(commit.files)],
            })

    def tree(self, repo_id, revision, path=""):
        with self.hub.lock:
            repo = self._repo(repo_id)
            commit = self._commit_of(repo, revision)
            recursive = self.query.get("recursive", "false").lower() in ("true", "1")
            prefix = path.strip("/") + "/" if path.strip("/") else ""
            entries, folders = [], set()
            for file_path in sorted(commit.files):
                if not file_path.startswith(prefix):
                    continue
                rest = file_path[len(prefix):]
                parts = rest.split("/")
                for depth in range(1, len(parts) if recursive else min(2, len(parts))):
                    folders.add(prefix + "/".join(parts[:depth]))
                if len(parts) > 1 and not recursive:
                    continue
                stored = commit.files[file_path]
                entry = {"type": "file", "oid": stored.blob_oid, "size": len(stored.content), "path": file_path}
                if stored.lfs:
                    entry["lfs"] = {"oid": stored.sha256, "size": len(stored.content),
                                    "pointerSize": len(lfs_pointer(stored.sha256, len(stored.content)))}
                entries.append(entry)
            if prefix and not entries and not folders:
                raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
            entries += [{"type": "directory", "oid": git_blob_oid(f.encode()), "size": 0, "path": f}
                        for f in sorted(folders)]
        self._send(200, entries)

    def preupload(self, repo_id, revision):
        with self.hub.lock:
            repo = self._repo(repo_id, write=True)
            commit = self._commit_of(repo, revision)
            out = []
            for item in self._json().get("files", []):
                sample = base64.b64decode(item.get("sample", ""))
                lfs = self.hub.is_lfs_path(commit.files, item["path"], int(item["size"]), sample)
                existing = commit.files.get(item["path"])
                remote_oid = None
                if existing is not None:
                    remote_oid = existing.sha256 if existing.lfs else existing.blob_oid
                out.append({"path": item["path"], "uploadMode": "lfs" if lfs else "regular",
                            "shouldIgnore": False, "oid": remote_oid})
        self._send(200, {"files": out, "commitOid": commit.oid})

    def lfs_batch(self, repo_id):
        payload = self._json()
        with self.hub.lock:
            repo = self._repo(repo_id, write=payload.get("operation") == "upload")
            if payload.get("operation") != "upload" or "basic" not in payload.get("transfers", ["basic"]):
                raise HubError(400, "Only 'upload' with the 'basic' transfer is supported")
            objects = []
            for obj in payload.get("objects", []):
                oid, size = obj["oid"], int(obj["size"])
                entry = {"oid": oid, "size": size, "authenticated": True}
                if oid not in self.hub.lfs_objects:
                    entry["actions"] = {
                        "upload": {"href": self.hub.cdn_url("upload", oid, size)},
                        "verify": {"href": f"{self.hub.endpoint}/{repo.repo_id}.git/info/lfs/objects/verify"},
                    }
                objects.append(entry)
        self._send(200, {"transfer": "basic", "objects": objects}, content_type="application/vnd.git-lfs+json")

    def lfs_verify(self, repo_id):
        payload = self._json()
        with self.hub.lock:
            self._repo(repo_id, write=True)
            content = self.hub.lfs_objects.get(payload.get("oid"))
            if content is None or len(content) != int(payload.get("size", -1)):
                raise HubError(404, "Object not found or size mismatch")
        self._send(200, {"message": "Object verified"})

    def commit(self, repo_id, revision):
        lines = [json.loads(line) for line in self.body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "The first line of the commit payload must be its header")
        header = lines[0]["value"]
        with self.hub.lock:
            repo = self._repo(repo_id, write=True)
            head = self._commit_of(repo, revision)
            if revision not in repo.branches:
                raise HubError(400, f"Cannot commit to {revision}: not a branch")
            if header.get("parentCommit") and header["parentCommit"] != head.oid:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(head.files)
            for line in lines[1:]:
                key, value = line["key"], line["value"]
                path = value.get("path", "")
                if key == "file":
                    content = base64.b64decode(value["content"])
                    if self.hub.is_lfs_path(files, path, len(content), content[:512]):
                        raise HubError(400, f"Your push was rejected: {path} must be stored with Git LFS.")
                    files[path] = StoredFile(content, lfs=False)
                elif key == "lfsFile":
                    content = self.hub.lfs_objects.get(value["oid"])
                    if content is None or ("size" in value and len(content) != int(value["size"])):
                        raise HubError(422, f"LFS object {value['oid']} for {path} was not uploaded")
                    files[path] = StoredFile(content, lfs=True)
                elif key == "deletedFile":
                    if files.pop(path, None) is None:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                elif key == "deletedFolder":
                    prefix = path.rstrip("/") + "/"
                    for name in [n for n in files if n.startswith(prefix)]:
                        del files[name]
                else:
                    raise HubError(400, f"Unsupported commit operation: {key}")
            commit = self.hub._commit(repo, revision, header.get("summary", ""),
                                      header.get("description", ""), files)
        self._send(200, {"success": True, "commitOid": commit.oid, "commitMessage": commit.message,
                         "commitUrl": f"{self.hub.endpoint}/{repo_id}/commit/{commit.oid}",
                         "pullRequestUrl": None})

    def resolve(self, repo_id, revision, path):
        with self.hub.lock:
            repo = self._repo(repo_id)
            commit = self._commit_of(repo, revision)
            stored = commit.files.get(path)
            if stored is None:
                raise HubError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": commit.oid})
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{stored.blob_oid}"', "Accept-Ranges": "bytes"}
        if stored.lfs:
            # Like the Hub: LFS files are served by another origin through a signed url.
            headers.update({"Location": self.hub.cdn_url("download", stored.sha256, len(stored.content)),
                            "X-Linked-Etag": f'"{stored.sha256}"',
                            "X-Linked-Size": str(len(stored.content))})
            return self._send(302, b"", headers, content_type="text/plain")
        self._send(200, stored.content, headers, content_type="application/octet-stream")

    # --- CDN -----------------------------------------------------------------------------

    def cdn_upload(self, oid):
        if not hmac.compare_digest(self.query.get("sig", ""), self.hub.sign("upload", oid)):
            raise HubError(403, "Signature mismatch")
        if hashlib.sha256(self.body).hexdigest() != oid or len(self.body) != int(self.query.get("size", -1)):
            raise HubError(400, "Uploaded content does not match its sha256/size")
        with self.hub.lock:
            self.hub.lfs_objects[oid] = self.body
        self._send(200, b"", {"ETag": f'"{hashlib.md5(self.body).hexdigest()}"'})

    def cdn_download(self, oid):
        if not hmac.compare_digest(self.query.get("sig", ""), self.hub.sign("download", oid)):
            raise HubError(403, "Signature mismatch")
        with self.hub.lock:
            content = self.hub.lfs_objects.get(oid)
        if content is None:
            raise HubError(404, "No such object")
        self._send(200, content, {"ETag": f'"{oid}"'}, content_type="application/octet-stream")


_REPO = r"(?P<repo_id>[\w.-]+/[\w.-]+)"
_REV = r"(?P<revision>[^/]+)"
_HUB_ROUTES = [
    ("GET", re.compile(r"/api/whoami-v2"), _Handler.whoami),
    ("POST", re.compile(r"/api/repos/create"), _Handler.create_repo),
    ("POST", re.compile(r"/api/validate-yaml"), _Handler.validate_yaml),
    ("GET", re.compile(rf"/api/models/{_REPO}"), _Handler.repo_info),
    ("GET", re.compile(rf"/api/models/{_REPO}/revision/{_REV}"), _Handler.repo_info),
    ("GET", re.compile(rf"/api/models/{_REPO}/tree/{_REV}(?:/(?P<path>.*))?"), _Handler.tree),
    ("POST", re.compile(rf"/api/models/{_REPO}/preupload/{_REV}"), _Handler.preupload),
    ("POST", re.compile(rf"/api/models/{_REPO}/commit/{_REV}"), _Handler.commit),
    ("POST", re.compile(rf"/api/models/{_REPO}/branch/(?P<branch>[^/]+)"), _Handler.create_branch),
    ("POST", re.compile(rf"/{_REPO}\.git/info/lfs/objects/batch"), _Handler.lfs_batch),
    ("POST", re.compile(rf"/{_REPO}\.git/info/lfs/objects/verify"), _Handler.lfs_verify),
    ("GET", re.compile(rf"/{_REPO}/resolve/{_REV}/(?P<path>.+)"), _Handler.resolve),
]
_CDN_ROUTES = [
    ("PUT", re.compile(r"/upload/(?P<oid>[0-9a-f]{64})"), _Handler.cdn_upload),
    ("GET", re.compile(r"/blobs/(?P<oid>[0-9a-f]{64})"), _Handler.cdn_download),
]



# --- the pytest fixture ---------------------------------------------------------------------


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    """A running FakeHub that the real huggingface_hub client talks to, for one test.

    huggingface_hub reads its settings at import time, so the module constants are patched
    (and restored by monkeypatch): the endpoint, offline mode off for this test only (the
    suite sets HF_HUB_OFFLINE=1), Xet off (not modelled here), and a cache, token file and
    HF home under tmp_path, so neither the developer's login nor their cache is used.
    No HF_TOKEN: a test sets it, or passes a token, when it wants one.
    """
    from huggingface_hub import constants
    from huggingface_hub.utils._http import close_session

    hub = FakeHub().start()
    home = tmp_path / "hf_home"
    settings = {
        "ENDPOINT": hub.endpoint,
        "HUGGINGFACE_CO_URL_TEMPLATE": hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_XET": True,
        "HF_HUB_DISABLE_TELEMETRY": True,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "AGENT_HARNESSES_PATH": str(home / "agent_harnesses.json"),
    }
    optional = {"HF_STORED_TOKENS_PATH", "AGENT_HARNESSES_PATH"}  # not in every version
    for name, value in settings.items():
        monkeypatch.setattr(constants, name, value, raising=name not in optional)
    # The module-level client behind huggingface_hub.file_exists & co. (peft uses them) read
    # the endpoint when it was created.
    from huggingface_hub import hf_api

    monkeypatch.setattr(hf_api.api, "endpoint", hub.endpoint)
    # So did transformers' shared client (chat-template listing when a tokenizer loads from a
    # repo): left on the real endpoint, each such load sat in the offline retry backoff (~45 s).
    import transformers.utils.hub

    monkeypatch.setattr(transformers.utils.hub, "_hf_api", None, raising=False)
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    close_session()  # no pooled connection from an earlier test
    try:
        yield hub
    finally:
        close_session()
        hub.stop()
