"""Thin layer over ``huggingface_hub``: push a folder, download files or snapshots, with clear errors.

``huggingface_hub`` is imported inside the functions so that ``import zoo`` stays fast.
Downloaded files are checked against a given sha256, else against the hash the Hub advertised (the name of the
cached blob: the LFS sha256, or the git blob sha1 of a regular file); a bad copy is deleted from the cache.
"""
from __future__ import annotations

import contextvars
import hashlib
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from zoo.errors import UsageError, ZooError

__all__ = [
    "HubError", "RepoNotFound", "RevisionNotFound", "FileNotFound", "ChecksumError",
    "parse_hf_uri", "push_folder", "download_file", "download_snapshot", "fetch_repo",
]

_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_LOGIN_HINT = "Run `hf auth login` (or the older `huggingface-cli login`), or set the HF_TOKEN environment variable."
_CONNECTION_ERRORS = {"ConnectError", "ConnectTimeout", "ConnectionError", "TimeoutException", "ReadTimeout"}


class HubError(ZooError):
    """Talking to the Hugging Face Hub (or its local cache) failed."""


class RepoNotFound(HubError):
    """The repo does not exist, or is private and the token cannot read it."""


class RevisionNotFound(HubError):
    """The repo exists but the branch, tag or commit does not."""


class FileNotFound(HubError):
    """The repo and revision exist but the file does not."""


class HubUnreachable(HubError):
    """The file is not in the local cache and the Hub cannot be asked (offline, or no connection)."""


class ChecksumError(HubError):
    """A downloaded file does not hash to what was expected; the bad cached copy was deleted."""


class BadRepoId(HubError, UsageError):
    """A repo id the Hub would refuse (checked before any Hub client call; the CLI exits 2)."""


_REPO_PART = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?")
REPO_ID_RULES = ("'org/name': letters, digits, '-', '_' and '.', each part 1 to 96 characters, starting and "
                 "ending with a letter or digit, without '--' or '..'")


def check_repo_id(repo_id: str, what: str = "repo id") -> str:
    """``repo_id`` if the Hub would accept it (its rules for ``org/name``), else a BadRepoId naming it."""
    parts = repo_id.split("/") if isinstance(repo_id, str) else []
    if (len(parts) != 2 or not all(_REPO_PART.fullmatch(p) for p in parts)
            or any("--" in p or ".." in p for p in parts) or repo_id.endswith(".git")):
        shown = repo_id if not isinstance(repo_id, str) or len(repo_id) <= 60 else repo_id[:57] + "..."
        raise BadRepoId(f"{what} {shown!r} is not a valid Hub repo id"
                        + (f" ({len(repo_id)} characters)" if isinstance(repo_id, str) and len(repo_id) > 60 else "")
                        + f": expected {REPO_ID_RULES}")
    return repo_id


def parse_hf_uri(uri: str) -> tuple[str, str | None]:
    """``"hf://org/name@rev"`` -> ``("org/name", "rev")``; without ``@rev`` the revision is ``None``."""
    if not isinstance(uri, str) or not uri.startswith("hf://"):
        raise HubError(f"Not a Hub URI: {uri!r} (expected 'hf://org/name' or 'hf://org/name@revision')")
    repo_id, _, revision = uri[len("hf://"):].partition("@")
    repo_id = repo_id.strip("/")
    check_repo_id(repo_id, f"Hub URI {uri if len(uri) <= 60 else uri[:57] + '...'!r}: repo id")
    if "@" in uri[len("hf://"):] and not revision:
        raise HubError(f"Empty revision after '@' in Hub URI {uri!r}")
    return repo_id, revision or None


_OPTIONS: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("zoo_hub_options", default={})


@contextmanager
def hub_options(*, token: str | bool | None = None, cache_dir: str | os.PathLike[str] | None = None,
                local_files_only: bool | None = None, force_download: bool = False) -> Iterator[None]:
    """Options for every download in the block (``LatentModel.from_pretrained`` passes its arguments here)."""
    given = {k: v for k, v in (("token", token), ("cache_dir", cache_dir), ("local_files_only", local_files_only),
                               ("force_download", force_download)) if v not in (None, False)}
    reset = _OPTIONS.set({**_OPTIONS.get(), **given})
    try:
        yield
    finally:
        _OPTIONS.reset(reset)


def _download_kwargs(cache_dir: Any) -> dict[str, Any]:
    options = _OPTIONS.get()
    return {"cache_dir": cache_dir if cache_dir is not None else options.get("cache_dir"),
            "local_files_only": bool(options.get("local_files_only")) or _offline(),
            "force_download": bool(options.get("force_download")), "token": options.get("token")}


def _offline() -> bool:
    from huggingface_hub import constants

    return os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"} or bool(constants.HF_HUB_OFFLINE)


def _where(repo_id: str, revision: str | None, filename: str | None) -> str:
    where = f"{repo_id}@{revision or 'main'}"
    return f"{filename!r} in {where}" if filename else where


@contextmanager
def _translate(repo_id: str, revision: str | None, filename: str | None = None) -> Iterator[None]:
    """Turn ``huggingface_hub`` errors into ours, naming repo, revision and file."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError,
    )

    rev = revision or "main"
    try:
        yield
    except HubError:
        raise
    except RevisionNotFoundError as e:
        raise RevisionNotFound(f"Revision {rev!r} not found in Hub repo {repo_id!r} ({constants.ENDPOINT}).") from e
    except RepositoryNotFoundError as e:
        raise RepoNotFound(
            f"Hub repo {repo_id!r} not found at {constants.ENDPOINT} (revision {rev!r}). Check the name; if the "
            f"repo is private, make sure your token can read it. {_LOGIN_HINT}") from e
    except LocalEntryNotFoundError as e:
        what = f"file {filename!r}" if filename else "snapshot"
        if _offline():
            raise HubUnreachable(
                f"The {what} of {repo_id}@{rev} is not in the local Hugging Face cache ({constants.HF_HUB_CACHE}) "
                f"and HF_HUB_OFFLINE=1 forbids downloading it. Fetch it while online first with `zoo download NAME` "
                f"(NAME being the zoo model stored at hf://{repo_id}@{rev}), or unset HF_HUB_OFFLINE.") from e
        raise HubUnreachable(
            f"Could not reach the Hub at {constants.ENDPOINT} to fetch the {what} of {repo_id}@{rev}, and it is "
            f"not in the local cache ({constants.HF_HUB_CACHE}). Check your connection or HF_ENDPOINT.") from e
    except EntryNotFoundError as e:
        raise FileNotFound(f"File {filename!r} not found in Hub repo {repo_id!r} at revision {rev!r}.") from e
    except HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status == 401:
            where = _where(repo_id, revision, filename)
            raise HubError(f"The Hub rejected your token for {where}. {_LOGIN_HINT}") from e
        if status == 403:
            raise HubError(f"Your token may not write to {repo_id!r} ({e}). {_LOGIN_HINT}") from e
        raise HubError(f"Hub request for {_where(repo_id, revision, filename)} failed: {e}") from e
    except Exception as e:
        if type(e).__name__ in _CONNECTION_ERRORS:
            raise HubUnreachable(f"Could not reach the Hub at {constants.ENDPOINT} for {_where(repo_id, revision, filename)}:"
                           f" {e}. Check your connection or HF_ENDPOINT.") from e
        raise


def _ignored(rel: str) -> bool:
    """Never push git internals or huggingface_hub's local-dir metadata."""
    return ".git" in rel.split("/") or rel.startswith(".cache/huggingface/")


def push_folder(folder: str | os.PathLike[str], repo_id: str, *, token: str | None = None, private: bool = False,
                revision: str | None = None, create_pr: bool = False,
                commit_message: str = "Upload model with latent-zoo",
                delete_patterns: Sequence[str] = ()) -> dict[str, Any]:
    """Upload every file of ``folder`` to ``repo_id`` in one commit (creating the repo and branch if needed).
    Files already in the repo that match ``delete_patterns`` and are not in ``folder`` are deleted in the
    same commit (e.g. a weights variant the new run no longer has).

    Returns ``{"repo_id", "revision", "commit", "commit_url", "pr_url", "pr_revision"}``.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, get_token

    root = Path(folder)
    files = sorted(p for p in root.rglob("*") if p.is_file() and not _ignored(p.relative_to(root).as_posix()))
    if not root.is_dir() or not files:
        raise HubError(f"Nothing to push: {str(root)!r} is not a folder with files in it.")
    if _offline():
        raise HubError(f"Cannot push {str(root)!r} to {repo_id!r}: HF_HUB_OFFLINE=1 is set.")
    token = token or get_token()
    if not token:
        raise HubError(f"No Hugging Face token found: pushing to {repo_id!r} needs a write token. {_LOGIN_HINT}")
    if revision is not None and _HEX40.fullmatch(revision):
        raise HubError(f"Cannot push to commit {revision} of {repo_id!r}: give a branch name as revision.")
    api = HfApi(token=token)
    with _translate(repo_id, revision):
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision is not None and revision != "main" and not revision.startswith("refs/pr/"):
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        operations = [CommitOperationAdd(path_in_repo=p.relative_to(root).as_posix(), path_or_fileobj=str(p))
                      for p in files]
        new = {p.relative_to(root).as_posix() for p in files}
        if delete_patterns:
            try:
                present = api.list_repo_files(repo_id, revision=revision)
            except Exception:  # noqa: BLE001 - a new repo or branch: nothing to delete
                present = []
            operations += [CommitOperationDelete(path_in_repo=f) for f in present
                           if f not in new and any(fnmatch(f, p) for p in delete_patterns)]
        info = api.create_commit(repo_id, operations, commit_message=commit_message, revision=revision,
                                 create_pr=create_pr)
    return {"repo_id": repo_id, "revision": revision or "main", "commit": info.oid, "commit_url": info.commit_url,
            "pr_url": info.pr_url, "pr_revision": info.pr_revision}


def hash_file(path: Path, algo: str) -> str:
    """sha256 of a file, or (algo 'sha1') its git blob id, read in 1 MiB blocks."""
    h = hashlib.sha256() if algo == "sha256" else hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _advertised_hash(path: Path, repo_id: str, commit: str, filename: str) -> tuple[str, str] | None:
    """(algo, hash) the Hub gave for this file: the cached blob's name, else (online) its ETag."""
    if path.is_symlink():
        name = path.resolve().name
    elif _offline():
        return None
    else:
        from huggingface_hub import get_hf_file_metadata, hf_hub_url

        name = (get_hf_file_metadata(hf_hub_url(repo_id, filename, revision=commit)).etag or "").lower()
    if _HEX64.fullmatch(name):
        return "sha256", name
    if _HEX40.fullmatch(name):
        return "git-sha1", name
    return None


def _verify(path: Path, repo_id: str, revision: str | None, commit: str, filename: str, sha256: str | None) -> None:
    """Check ``path`` against ``sha256`` or the Hub's hash; on mismatch delete the cached copy and raise."""
    expected = ("sha256", sha256.lower()) if sha256 else _advertised_hash(path, repo_id, commit, filename)
    if expected is None:
        return
    actual = hash_file(path, expected[0])
    if actual == expected[1]:
        return
    blob = path.resolve()
    for bad in {path, blob}:
        try:
            bad.unlink()
        except FileNotFoundError:
            pass
    raise ChecksumError(
        f"Checksum mismatch for {filename!r} in {repo_id}@{revision or 'main'} (commit {commit}): expected "
        f"{expected[0]} {expected[1]}, got {actual}. The corrupted cached copy was deleted; download it again, and "
        f"if the mismatch persists the file on the Hub (or the expected hash) is wrong.")


def download_file(repo_id: str, filename: str, *, revision: str | None = None, sha256: str | None = None,
                  cache_dir: str | os.PathLike[str] | None = None) -> tuple[Path, str]:
    """Download (or reuse from cache) one file; returns its cached path and the resolved commit sha."""
    from huggingface_hub import hf_hub_download

    with _translate(repo_id, revision, filename):
        local = hf_hub_download(repo_id, filename, revision=revision, **_download_kwargs(cache_dir))
        path = Path(local)
        commit = path.parts[-1 - len(filename.split("/"))]
        _verify(path, repo_id, revision, commit, filename, sha256)
    return path, commit


def download_snapshot(repo_id: str, *, revision: str | None = None, allow_patterns: Sequence[str] | str | None = None,
                      cache_dir: str | os.PathLike[str] | None = None) -> tuple[Path, str]:
    """Download (or reuse from cache) a repo snapshot; returns the snapshot folder and the commit sha."""
    from huggingface_hub import snapshot_download

    patterns = [allow_patterns] if isinstance(allow_patterns, str) else allow_patterns
    with _translate(repo_id, revision):
        folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns,
                                        **_download_kwargs(cache_dir)))
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder).as_posix()
            if path.is_file() and (patterns is None or any(fnmatch(rel, p) for p in patterns)):
                _verify(path, repo_id, revision, folder.name, rel, None)
    return folder, folder.name


CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
DEFAULT_WEIGHTS = "model.safetensors"


def fetch_repo(repo_id: str, *, revision: str | None = None, weights: str | None = DEFAULT_WEIGHTS,
               cache_dir: str | os.PathLike[str] | None = None) -> tuple[Path, str]:
    """Download (or take from cache) what loading a zoo-pushed repo needs: config, card and one weights file.

    Every file comes from the one commit the first resolved ``revision`` to, and each is checksum-verified.
    ``weights=None`` fetches no weights. Returns the snapshot folder and the commit sha."""
    rev = revision or "main"
    try:
        config, commit = download_file(repo_id, CONFIG_FILE, revision=revision, cache_dir=cache_dir)
    except FileNotFound:
        try:
            config, commit = download_file(repo_id, CARD_FILE, revision=revision, cache_dir=cache_dir)
        except FileNotFound:
            raise FileNotFound(
                f"Hub repo {repo_id!r} at revision {rev!r} is not a latent-zoo model: it has neither {CONFIG_FILE!r} "
                f"nor {CARD_FILE!r} (publish a run with `zoo push RUN_DIR --repo {repo_id}`).") from None
    else:
        try:
            download_file(repo_id, CARD_FILE, revision=commit, cache_dir=cache_dir)
        except ChecksumError:
            raise
        except HubError:  # the card's prose is optional; config.json defines the model
            pass
    if weights is not None:
        try:
            download_file(repo_id, weights, revision=commit, cache_dir=cache_dir)
        except FileNotFound as e:
            raise FileNotFound(f"{e} (revision {rev!r} resolved to commit {commit}; pick another file with "
                               f"weights=..., e.g. {DEFAULT_WEIGHTS!r})") from None
    return config.parent, commit
