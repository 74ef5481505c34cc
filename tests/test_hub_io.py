"""``zoo.hub`` (push / download / errors) against the local Hub server, through the real ``huggingface_hub``."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from hub_fixtures import set_offline
from zoo.errors import ZooError
from zoo.hub import (
    ChecksumError, FileNotFound, HubError, RepoNotFound, RevisionNotFound, download_file, download_snapshot,
    parse_hf_uri, push_folder,
)

REPO = "test-user/tiny-vae"
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=:DeprecationWarning")


def _model_folder(path: Path, seed: int = 0, hidden: int = 4) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    save_file({"enc.weight": torch.randn(hidden, 3, generator=g), "dec.bias": torch.randn(3, generator=g)},
              str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps({"family": "vae", "hidden": hidden, "seed": seed}))
    (path / "README.md").write_text(f"---\nlicense: mit\ntags:\n- vae\n---\n# Tiny VAE (seed {seed})\n")
    (path / "extra").mkdir(exist_ok=True)
    (path / "extra" / "notes.txt").write_text("anything else in the folder goes too\n")
    return path


def _cache(local_hub) -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / ("models--" + REPO.replace("/", "--"))


def test_round_trip_into_clean_cache(local_hub, tmp_path):
    src = _model_folder(tmp_path / "src")
    (src / ".git").mkdir()
    (src / ".git" / "HEAD").write_text("ref: refs/heads/main\n")  # git internals are never pushed
    result = push_folder(src, REPO)
    assert result["repo_id"] == REPO and len(result["commit"]) == 40 and result["pr_url"] is None
    assert result["commit_url"].endswith(f"/{REPO}/commit/{result['commit']}")
    assert not _cache(local_hub).exists()  # pushing does not fill the download cache

    for name in ("model.safetensors", "config.json", "README.md", "extra/notes.txt"):
        path, commit = download_file(REPO, name)
        assert commit == result["commit"] and path.read_bytes() == (src / name).read_bytes(), name
    tensors = load_file(str(download_file(REPO, "model.safetensors")[0]))
    assert torch.equal(tensors["enc.weight"], load_file(str(src / "model.safetensors"))["enc.weight"])

    folder, commit = download_snapshot(REPO)
    assert commit == result["commit"] and folder.name == commit
    for p in src.rglob("*"):
        if p.is_file() and ".git" not in p.parts:
            assert (folder / p.relative_to(src)).read_bytes() == p.read_bytes()
    assert not (folder / ".git").exists()
    only, _ = download_snapshot(REPO, allow_patterns=["*.json"])
    assert only == folder


def test_model_card_loads_through_the_server(local_hub, tmp_path):
    from huggingface_hub import ModelCard

    push_folder(_model_folder(tmp_path / "src", seed=3), REPO)
    card = ModelCard.load(REPO)
    assert card.data.license == "mit" and card.data.tags == ["vae"]
    assert "# Tiny VAE (seed 3)" in card.text


def test_revision_pinning(local_hub, tmp_path):
    first = push_folder(_model_folder(tmp_path / "v1", seed=1), REPO)["commit"]
    second = push_folder(_model_folder(tmp_path / "v2", seed=2, hidden=5), REPO, commit_message="v2")["commit"]
    assert first != second

    path, commit = download_file(REPO, "config.json", revision=first)
    assert commit == first and json.loads(path.read_text())["seed"] == 1
    path, commit = download_file(REPO, "config.json")
    assert commit == second and json.loads(path.read_text())["seed"] == 2
    # The client records the X-Repo-Commit of the branch it resolved.
    assert (_cache(local_hub) / "refs" / "main").read_text() == second
    w1 = load_file(str(download_file(REPO, "model.safetensors", revision=first)[0]))
    assert w1["enc.weight"].shape == (4, 3)
    folder, commit = download_snapshot(REPO, revision=first)
    assert commit == first and json.loads((folder / "config.json").read_text())["seed"] == 1


def test_push_to_branch_and_create_pr(local_hub, tmp_path):
    main = push_folder(_model_folder(tmp_path / "v1", seed=1), REPO)["commit"]
    dev = push_folder(_model_folder(tmp_path / "dev", seed=7), REPO, revision="dev")
    assert dev["revision"] == "dev"
    assert json.loads(download_file(REPO, "config.json", revision="dev")[0].read_text())["seed"] == 7

    pr = push_folder(_model_folder(tmp_path / "v2", seed=2), REPO, create_pr=True, commit_message="propose v2")
    assert pr["pr_revision"] == "refs/pr/1" and pr["pr_url"].endswith(f"/{REPO}/discussions/1")
    path, commit = download_file(REPO, "config.json", revision="refs/pr/1")
    assert commit == pr["commit"] and json.loads(path.read_text())["seed"] == 2
    path, commit = download_file(REPO, "config.json")  # main did not move
    assert commit == main and json.loads(path.read_text())["seed"] == 1


def test_offline_warm_cache_and_cold_cache(local_hub, tmp_path, monkeypatch):
    commit = push_folder(_model_folder(tmp_path / "src"), REPO)["commit"]
    path, _ = download_file(REPO, "model.safetensors")
    folder, _ = download_snapshot(REPO, allow_patterns="*.json")
    expected = path.read_bytes()
    local_hub.stop()  # no server at all: only the cache can answer
    set_offline(monkeypatch)

    path, got = download_file(REPO, "model.safetensors")
    assert got == commit and path.read_bytes() == expected
    assert download_file(REPO, "model.safetensors", revision=commit)[1] == commit
    assert download_snapshot(REPO, allow_patterns="*.json") == (folder, commit)

    with pytest.raises(HubError) as err:
        download_file(REPO, "README.md")
    msg = str(err.value)
    assert REPO in msg and "README.md" in msg and "main" in msg
    assert "zoo download" in msg and "HF_HUB_OFFLINE" in msg
    with pytest.raises(HubError, match="zoo download"):
        download_file("test-user/never-fetched", "config.json", revision="v9")
    with pytest.raises(HubError, match="HF_HUB_OFFLINE"):
        push_folder(tmp_path / "src", REPO)


def test_offline_env_var_alone_is_honoured(local_hub, tmp_path, monkeypatch):
    push_folder(_model_folder(tmp_path / "src"), REPO)
    download_file(REPO, "config.json")
    local_hub.stop()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # set after huggingface_hub was imported
    assert download_file(REPO, "config.json")[0].exists()
    with pytest.raises(HubError, match="zoo download"):
        download_file(REPO, "README.md")


def _blobs(local_hub) -> set[str]:
    return {p.name for p in (_cache(local_hub) / "blobs").iterdir()}


def test_corrupted_lfs_download_is_rejected_and_purged(local_hub, tmp_path, monkeypatch):
    src = _model_folder(tmp_path / "src")
    push_folder(src, REPO)
    sha = hashlib.sha256((src / "model.safetensors").read_bytes()).hexdigest()
    local_hub.corrupt(REPO, "model.safetensors")

    with pytest.raises(ChecksumError) as err:
        download_file(REPO, "model.safetensors")
    msg = str(err.value)
    assert REPO in msg and "model.safetensors" in msg and "main" in msg and sha in msg
    assert isinstance(err.value, HubError) and isinstance(err.value, ZooError)
    assert sha not in _blobs(local_hub)
    assert not any(p.name == "model.safetensors" for p in (_cache(local_hub) / "snapshots").rglob("*"))

    with pytest.raises(ChecksumError):  # a second try downloads again and is rejected again
        download_file(REPO, "model.safetensors")
    with pytest.raises(ChecksumError):
        download_snapshot(REPO)
    set_offline(monkeypatch)
    with pytest.raises(HubError) as err:  # nothing left that could load as good
        download_file(REPO, "model.safetensors")
    assert not isinstance(err.value, ChecksumError)


def test_corrupted_regular_file_and_explicit_sha256(local_hub, tmp_path):
    src = _model_folder(tmp_path / "src")
    push_folder(src, REPO)
    good = hashlib.sha256((src / "README.md").read_bytes()).hexdigest()
    path, _ = download_file(REPO, "README.md", sha256=good)
    assert path.read_bytes() == (src / "README.md").read_bytes()
    with pytest.raises(ChecksumError, match="0" * 64):
        download_file(REPO, "README.md", sha256="0" * 64)
    assert not path.exists()

    local_hub.corrupt(REPO, "config.json")  # a regular (non-LFS) file: checked against its git blob sha1
    with pytest.raises(ChecksumError, match="git-sha1"):
        download_file(REPO, "config.json")


def test_checksum_without_symlinks_uses_hub_etag(local_hub, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_SYMLINKS", True)  # snapshot files are plain copies
    src = _model_folder(tmp_path / "src")
    push_folder(src, REPO)
    path, _ = download_file(REPO, "config.json")
    assert not path.is_symlink() and path.read_bytes() == (src / "config.json").read_bytes()
    local_hub.corrupt(REPO, "model.safetensors")
    with pytest.raises(ChecksumError, match="sha256"):
        download_file(REPO, "model.safetensors")
    assert not any(p.name == "model.safetensors" for p in _cache(local_hub).rglob("*"))


def test_resume_interrupted_download(local_hub, tmp_path, monkeypatch):
    from huggingface_hub import constants

    # The client writes (and so can resume from) whole chunks only: use small ones so 100 kB count.
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 10_000)
    src = tmp_path / "big"
    src.mkdir()
    payload = os.urandom(300_000)
    (src / "weights.bin").write_bytes(payload)
    push_folder(src, REPO)
    local_hub.interrupt_next_download(REPO, "weights.bin", after_bytes=100_000)

    path, _ = download_file(REPO, "weights.bin", sha256=hashlib.sha256(payload).hexdigest())
    assert path.read_bytes() == payload
    gets = [h.get("Range") for m, p, h in local_hub.requests if m == "GET" and p.endswith("/weights.bin")]
    assert gets == [None, "bytes=100000-"]  # the client resumed where the connection dropped


def test_missing_or_bad_token_says_how_to_log_in(local_hub, tmp_path, monkeypatch):
    src = _model_folder(tmp_path / "src")
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(HubError) as err:
        push_folder(src, REPO)
    msg = str(err.value)
    assert "hf auth login" in msg and "huggingface-cli login" in msg and "HF_TOKEN" in msg and REPO in msg
    with pytest.raises(HubError, match="hf auth login"):
        push_folder(src, REPO, token="hf_not_a_valid_token")
    assert push_folder(src, REPO, token=local_hub.token)["repo_id"] == REPO


def test_not_found_errors_name_the_thing(local_hub, tmp_path):
    with pytest.raises(RepoNotFound, match="test-user/nope"):
        download_file("test-user/nope", "config.json")
    with pytest.raises(RepoNotFound, match="test-user/nope"):
        download_snapshot("test-user/nope")
    push_folder(_model_folder(tmp_path / "src"), REPO)
    with pytest.raises(RevisionNotFound, match="v404"):
        download_file(REPO, "config.json", revision="v404")
    with pytest.raises(RevisionNotFound, match="v404"):
        download_snapshot(REPO, revision="v404")
    with pytest.raises(FileNotFound) as err:
        download_file(REPO, "nope.safetensors")
    assert "nope.safetensors" in str(err.value) and REPO in str(err.value)
    for cls in (RepoNotFound, RevisionNotFound, FileNotFound, ChecksumError):
        assert issubclass(cls, HubError) and issubclass(cls, ZooError)


def test_private_repo(local_hub, tmp_path, monkeypatch):
    push_folder(_model_folder(tmp_path / "src"), REPO, private=True)
    assert download_file(REPO, "config.json")[0].exists()
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(RepoNotFound, match="private"):
        download_file(REPO, "README.md")


@pytest.mark.parametrize("uri, expected", [
    ("hf://org/name", ("org/name", None)),
    ("hf://org/name@main", ("org/name", "main")),
    ("hf://org/my.model-v2@" + "a" * 40, ("org/my.model-v2", "a" * 40)),
    ("hf://org/name@refs/pr/3", ("org/name", "refs/pr/3")),
])
def test_parse_hf_uri(uri, expected):
    assert parse_hf_uri(uri) == expected


@pytest.mark.parametrize("uri", ["org/name", "hf://name", "hf://a/b/c", "hf://org/name@", "https://hf.co/org/name"])
def test_parse_hf_uri_rejects(uri):
    with pytest.raises(HubError, match="hf://"):
        parse_hf_uri(uri)


# Loading pushed models end to end (real load_folder, real weights) is tested in test_hub_roundtrip.py.
