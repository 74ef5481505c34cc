"""The local Hub server, exercised through raw HTTP and through the real ``huggingface_hub`` client."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from hub_fixtures import ROOT
from tools.hub_server import LocalHub, git_blob_sha1, iter_files

REPO = "test-user/server-repo"
# The client itself PUTs raw bytes with a deprecated httpx2 keyword; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=:DeprecationWarning")


def _http(method: str, url: str, *, headers: dict[str, str] | None = None, body: bytes | None = None):
    """(status, headers, body) of a raw request; HTTP errors are returned, not raised."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def _api():
    from huggingface_hub import HfApi

    return HfApi()


def _push(files: dict[str, bytes], repo: str = REPO, **kwargs):
    from huggingface_hub import CommitOperationAdd

    api = _api()
    api.create_repo(repo, exist_ok=True)
    ops = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=data) for p, data in files.items()]
    return api.create_commit(repo, ops, commit_message="test commit", **kwargs)


def test_create_repo_conflict_and_exist_ok(local_hub):
    from huggingface_hub.errors import HfHubHTTPError

    api = _api()
    url = api.create_repo(REPO)
    assert url.repo_id == REPO and url.startswith(local_hub.url)
    assert api.create_repo(REPO, exist_ok=True).repo_id == REPO
    with pytest.raises(HfHubHTTPError) as err:
        api.create_repo(REPO)
    assert err.value.response.status_code == 409
    # A new repo has an initial commit holding .gitattributes, like the real Hub.
    info = api.model_info(REPO)
    assert len(info.sha) == 40 and [s.rfilename for s in info.siblings] == [".gitattributes"]


def test_auth_write_needs_token_and_whoami(local_hub):
    from huggingface_hub.errors import HfHubHTTPError

    create = f"{local_hub.url}/api/repos/create"
    payload = json.dumps({"name": "x", "organization": None}).encode()
    status, headers, _ = _http("POST", create, body=payload, headers={"Content-Type": "application/json"})
    assert status == 401
    status, headers, _ = _http("POST", create, body=payload, headers={"Authorization": "Bearer hf_wrong"})
    assert status == 401 and headers["X-Error-Message"] == "Invalid credentials in Authorization header"
    assert _api().whoami()["name"] == local_hub.user
    with pytest.raises(HfHubHTTPError):
        _api().whoami(token="hf_wrong")


def test_private_repo_needs_token_to_read(local_hub):
    from huggingface_hub.errors import RepositoryNotFoundError

    api = _api()
    api.create_repo(REPO, private=True)
    assert api.model_info(REPO).private is True
    with pytest.raises(RepositoryNotFoundError):
        api.model_info(REPO, token=False)
    status, headers, _ = _http("GET", f"{local_hub.url}/api/models/{REPO}")
    assert status == 401 and headers["X-Error-Code"] == "RepoNotFound"


def test_error_codes_map_to_client_errors(local_hub):
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import RemoteEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    api = _api()
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("test-user/nope")
    api.create_repo(REPO)
    with pytest.raises(RevisionNotFoundError):
        api.model_info(REPO, revision="no-such-branch")
    with pytest.raises(RemoteEntryNotFoundError):
        get_hf_file_metadata(hf_hub_url(REPO, "missing.txt"))
    status, headers, _ = _http("HEAD", local_hub.file_url(REPO, "missing.txt"))
    assert status == 404 and headers["X-Error-Code"] == "EntryNotFound"
    assert headers["X-Repo-Commit"] == api.model_info(REPO).sha


def test_resolve_headers_and_ranges(local_hub):
    weights, notes = os.urandom(1000), b"plain text notes\n"
    commit = _push({"w.bin": weights, "notes.txt": notes}).oid

    status, h, body = _http("HEAD", local_hub.file_url(REPO, "w.bin"))
    sha256 = hashlib.sha256(weights).hexdigest()
    assert status == 200 and body == b""
    assert h["X-Repo-Commit"] == commit and h["ETag"] == f'"{sha256}"'
    assert h["X-Linked-Etag"] == f'"{sha256}"' and h["X-Linked-Size"] == "1000" and h["Content-Length"] == "1000"

    status, h, body = _http("GET", local_hub.file_url(REPO, "notes.txt"))
    assert status == 200 and body == notes and h["ETag"] == f'"{git_blob_sha1(notes)}"' and "X-Linked-Etag" not in h
    assert git_blob_sha1(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"  # `git hash-object`

    url = local_hub.file_url(REPO, "w.bin", revision=commit)
    for rng, start, end in (("bytes=10-19", 10, 19), ("bytes=990-", 990, 999), ("bytes=-5", 995, 999),
                            ("bytes=900-5000", 900, 999)):
        status, h, body = _http("GET", url, headers={"Range": rng})
        assert status == 206 and body == weights[start:end + 1], rng
        assert h["Content-Range"] == f"bytes {start}-{end}/1000" and h["Content-Length"] == str(end - start + 1)
    status, h, _ = _http("GET", url, headers={"Range": "bytes=1000-"})
    assert status == 416 and h["Content-Range"] == "bytes */1000"


def test_revisions_by_sha_tree_and_deletes(local_hub):
    from huggingface_hub import CommitOperationDelete

    api = _api()
    first = _push({"a.txt": b"one", "sub/dir/b.txt": b"two"}).oid
    second = api.create_commit(REPO, [CommitOperationDelete("a.txt")], commit_message="rm").oid
    assert api.model_info(REPO).sha == second
    assert api.model_info(REPO, revision=first).sha == first
    assert "a.txt" not in api.list_repo_files(REPO)
    assert set(api.list_repo_files(REPO, revision=first)) == {".gitattributes", "a.txt", "sub/dir/b.txt"}
    top = {(type(e).__name__, e.path) for e in api.list_repo_tree(REPO, revision=first)}
    assert top == {("RepoFile", ".gitattributes"), ("RepoFile", "a.txt"), ("RepoFolder", "sub")}
    assert [e.path for e in api.list_repo_tree(REPO, "sub/dir")] == ["sub/dir/b.txt"]
    assert _http("GET", local_hub.file_url(REPO, "a.txt", revision=first))[2] == b"one"
    assert _http("GET", local_hub.file_url(REPO, "a.txt"))[0] == 404
    assert [c.commit_id for c in api.list_repo_commits(REPO)][:2] == [second, first]
    assert list(iter_files(local_hub, REPO, first)) == [".gitattributes", "a.txt", "sub/dir/b.txt"]


def test_lfs_upload_checks_content_and_dedups(local_hub):
    api = _api()
    data = os.urandom(300)
    _push({"w.bin": data})
    info = api.model_info(REPO, files_metadata=True)
    lfs = {s.rfilename: s.lfs for s in info.siblings}["w.bin"]
    assert lfs is not None and lfs.sha256 == hashlib.sha256(data).hexdigest() and lfs.size == 300

    batch = f"{local_hub.url}/{REPO}.git/info/lfs/objects/batch"
    auth = {"Authorization": f"Bearer {local_hub.token}", "Content-Type": "application/json"}
    other = os.urandom(50)
    oid = hashlib.sha256(other).hexdigest()
    req = {"operation": "upload", "transfers": ["basic"], "hash_algo": "sha256",
           "objects": [{"oid": lfs.sha256, "size": 300}, {"oid": oid, "size": 50}]}
    status, _, body = _http("POST", batch, headers=auth, body=json.dumps(req).encode())
    objects = {o["oid"]: o for o in json.loads(body)["objects"]}
    assert status == 200 and "actions" not in objects[lfs.sha256]  # already stored: nothing to upload
    href = objects[oid]["actions"]["upload"]["href"]
    assert _http("PUT", href, body=b"x" * 50)[0] == 400  # content does not hash to the oid
    assert _http("PUT", href.split("?")[0], body=other)[0] == 403  # no upload signature
    assert _http("PUT", href, body=other)[0] == 200
    verify = objects[oid]["actions"]["verify"]["href"]
    assert _http("POST", verify, headers=auth, body=json.dumps({"oid": oid, "size": 50}).encode())[0] == 200


def test_branches_refs_and_pull_requests(local_hub):
    from huggingface_hub.errors import HfHubHTTPError

    api = _api()
    main = _push({"a.txt": b"main"}).oid
    api.create_branch(REPO, branch="dev")
    api.create_branch(REPO, branch="dev", exist_ok=True)
    with pytest.raises(HfHubHTTPError):
        api.create_branch(REPO, branch="dev")
    dev = _push({"a.txt": b"dev"}, revision="dev").oid
    pr = _push({"a.txt": b"pr"}, create_pr=True)
    assert pr.pr_revision == "refs/pr/1" and pr.pr_num == 1 and pr.pr_url.endswith(f"{REPO}/discussions/1")
    refs = api.list_repo_refs(REPO, include_pull_requests=True)
    assert {b.name: b.target_commit for b in refs.branches} == {"main": main, "dev": dev}
    assert [(p.ref, p.target_commit) for p in refs.pull_requests] == [("refs/pr/1", pr.oid)]
    assert _http("GET", local_hub.file_url(REPO, "a.txt", revision="refs/pr/1"))[2] == b"pr"
    assert _http("GET", local_hub.file_url(REPO, "a.txt"))[2] == b"main"
    with pytest.raises(HfHubHTTPError) as err:  # stale parent commit is refused
        _push({"a.txt": b"late"}, revision="dev", parent_commit=main)
    assert err.value.response.status_code == 412


def test_corrupt_keeps_advertised_hash(local_hub):
    data = os.urandom(200)
    _push({"w.bin": data})
    local_hub.corrupt(REPO, "w.bin")
    status, h, body = _http("GET", local_hub.file_url(REPO, "w.bin"))
    assert status == 200 and len(body) == 200 and body != data
    assert h["X-Linked-Etag"] == f'"{hashlib.sha256(data).hexdigest()}"'


def test_cli_serves_a_root_folder(tmp_path: Path):
    proc = subprocess.Popen([sys.executable, str(ROOT / "tools" / "hub_server.py"), "--root", str(tmp_path),
                             "--port", "0", "--token", "hf_cli=cli-user"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = line.split(" at ")[1].split()[0]
        status, headers, _ = _http("GET", f"{url}/api/models/a/b")
        assert status == 404 and headers["X-Error-Code"] == "RepoNotFound"
        status, _, body = _http("GET", f"{url}/api/whoami-v2", headers={"Authorization": "Bearer hf_cli"})
        assert status == 200 and json.loads(body)["name"] == "cli-user"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_local_hub_context_manager_stops(tmp_path: Path):
    with LocalHub(tmp_path) as hub:
        url = hub.url
        assert _http("GET", f"{url}/api/models/a/b")[0] == 404
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/api/models/a/b", timeout=2)
