"""Publish and load back through the real ``huggingface_hub`` client and the local Hub server.

A tiny VAE is trained once (20 steps on zoo:digits); each test pushes it with ``zoo.hub.publish.push`` (or
``zoo push``) and loads it with ``zoo.load`` by repo id, by ``hf://repo@sha`` and through a card that pins
the weights, into a clean cache, online and offline, and checks every bad input names what is wrong.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

import zoo
from hub_fixtures import register_card_folder, set_offline
from make_cards import card_markdown, make_card
from zoo.cards import parse_card
from zoo.cli import main
from zoo.errors import CardError, WeightsError
from zoo.hub import ChecksumError, FileNotFound, HubError, RepoNotFound, RevisionNotFound
from zoo.hub.publish import push

REPO = "test-user/tiny-vae"
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=:DeprecationWarning")

SMALL = dict(metadata={"license": "mit", "datasets": ["scikit-learn/digits"], "tags": ["digits"]},
             body="# tiny-vae\n\nA tiny VAE on 8x8 digits for the Hub round-trip tests.")


def _recipe(seed: int) -> dict:
    return {"steps": 20, "batch_size": 64, "lr": 0.003, "seed": seed, "eval_iwae_k": 5}


def _train(out: Path, seed: int) -> Path:
    card = make_card("tiny-vae", train=_recipe(seed), **SMALL)
    zoo.train(card, out=out, steps=20, progress=False)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    """Two runs of the same tiny card with different seeds (so their weights differ)."""
    root = tmp_path_factory.mktemp("runs")
    return _train(root / "seed0", 0), _train(root / "seed1", 1)


@pytest.fixture
def run(runs, tmp_path) -> Path:
    """A private copy of the seed-0 run that a test may modify."""
    return Path(shutil.copytree(runs[0], tmp_path / "run"))


X = (torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8)


def _outputs(model) -> dict[str, torch.Tensor]:
    torch.manual_seed(5)
    elbo = model.elbo(X).elbo
    return {"reconstruct": model.reconstruct(X), "elbo": elbo,
            "sample": model.sample(4, generator=torch.Generator().manual_seed(2)),
            **{f"w.{k}": v for k, v in model.state_dict().items()}}


def _same(a, b) -> bool:
    oa, ob = _outputs(a), _outputs(b)
    return oa.keys() == ob.keys() and all(torch.equal(oa[k], ob[k]) for k in oa)


def _fresh_cache(monkeypatch, path: Path) -> Path:
    """Point the client at an empty cache folder (a 'clean machine')."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_CACHE", str(path))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(path))
    return path


def _register_card(tmp_path: Path, name: str, weights: dict) -> None:
    """Write a card that pins ``weights`` and register it as an in-process plugin (reset by the fixture)."""
    folder = tmp_path / "cards"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.md").write_text(card_markdown(name, train=_recipe(0), weights=weights, **SMALL))
    register_card_folder(folder, name)


# -- publish --------------------------------------------------------------------------------------------------
def test_push_uploads_weights_config_and_a_card_the_hub_reads(local_hub, run):
    from huggingface_hub import ModelCard

    from tools.hub_server import iter_files

    shutil.copyfile(run / "model.safetensors", run / "model_raw.safetensors")  # a variant goes up too
    (run / "checkpoints").mkdir(exist_ok=True)
    (run / "checkpoints" / "junk.safetensors").write_bytes(b"not pushed")
    result = push(run, REPO)
    assert len(result["commit"]) == 40 and result["revision"] == "main"
    pushed = list(iter_files(local_hub, REPO))
    assert [f for f in pushed if not f.startswith("tensorboard/")] == [
        ".gitattributes", "README.md", "config.json", "model.safetensors", "model_raw.safetensors", "samples.png"]
    assert any(f.startswith("tensorboard/events.out.tfevents") for f in pushed)   # the Hub's Metrics tab
    sha = hashlib.sha256((run / "model.safetensors").read_bytes()).hexdigest()
    assert result["files"]["model.safetensors"] == sha
    assert result["weights"] == {"repo": REPO, "revision": result["commit"], "file": "model.safetensors",
                                 "sha256": sha}

    card = ModelCard.load(REPO)  # the real client parses the metadata back
    data = card.data
    assert data.license == "mit" and data.library_name == "latent-zoo"
    assert data.pipeline_tag == "unconditional-image-generation"
    assert {"latent-zoo", "vae", "digits"} <= set(data.tags)
    assert data.datasets == ["scikit-learn/digits"]
    assert data.model_name == "tiny-vae"
    results = zoo.read_card(run / "README.md").zoo["results"]
    by_type = {r.metric_type: r for r in data.eval_results}
    assert {"elbo", "nll", "bits_per_dim", "mutual_information", "active_units"} <= set(by_type)
    nll = by_type["nll"]
    assert nll.metric_value == results["nll"] and nll.metric_args["k"] == 5
    assert "importance-weighted" in nll.metric_args["estimator"]
    assert nll.metric_args["seed"] == 0 and nll.metric_args["zoo_version"] == zoo.__version__
    assert by_type["elbo"].metric_value == results["elbo"]
    assert by_type["mutual_information"].metric_value == results["mutual_information"]
    assert by_type["active_units"].metric_value == results["active_units"]
    # model-index names the upstream Hub data set and says the test split was carved from the embedded sample
    assert nll.dataset_type == "sklearn-docs/digits" and "zoo:digits" in nll.dataset_name
    assert nll.dataset_split.startswith("test (carved: 300 of the 1797 images")
    # the body: a results table with the command that reproduces the numbers
    assert "## Results" in card.text and results["command"] in card.text
    assert f"zoo diagnose hf://{REPO} --data zoo:digits --split test --k 5" in card.text
    assert card.text.count("## Results") == 1
    assert "base_model" not in card.data.to_dict()  # trained from scratch


def test_round_trip_into_a_clean_cache_by_repo_id_and_pinned_uri(local_hub, runs, monkeypatch, tmp_path):
    first = push(runs[0], REPO)["commit"]
    second = push(runs[1], REPO)["commit"]
    original0, original1 = zoo.load(runs[0]), zoo.load(runs[1])
    assert not _same(original0, original1)

    _fresh_cache(monkeypatch, tmp_path / "clean-cache")
    latest = zoo.load(REPO)
    assert _same(latest, original1)
    assert latest.info["revision"] == second and latest.info["repo"] == REPO
    assert latest.info["file"] == "model.safetensors"

    pinned = zoo.load(f"hf://{REPO}@{first}")
    assert _same(pinned, original0) and pinned.info["revision"] == first
    override = zoo.load(f"hf://{REPO}@{second}", revision=first)  # revision= wins over @rev
    assert _same(override, original0) and override.info["revision"] == first
    assert zoo.load(REPO, revision=first[:10]).info["revision"] == first  # a short sha resolves too
    bare = zoo.load(REPO, pretrained=False)
    assert bare.name == "tiny-vae" and not _same(bare, original1) and bare.info["revision"] == second


def test_card_with_a_weights_block_loads_the_pinned_commit(local_hub, runs, fresh_registry, tmp_path, monkeypatch):
    pushed = push(runs[0], REPO)
    push(runs[1], REPO)  # main moves on; the card stays pinned
    _register_card(tmp_path, "tiny-pinned", pushed["weights"])
    assert "tiny-pinned" in zoo.list_models()
    _fresh_cache(monkeypatch, tmp_path / "clean-cache")

    model = zoo.load("tiny-pinned")
    assert _same(model, zoo.load(runs[0]))
    assert model.info["revision"] == pushed["commit"] and model.info["sha256"] == pushed["weights"]["sha256"]
    moved = zoo.load("tiny-pinned", revision="main")  # revision= overrides the card's pin
    assert _same(moved, zoo.load(runs[1])) and moved.info["revision"] != pushed["commit"]


def test_cli_push_and_download_then_offline(local_hub, runs, fresh_registry, tmp_path, monkeypatch, capsys):
    assert main(["push", str(runs[0]), "--repo", REPO]) == 0
    out = capsys.readouterr().out
    commit = out.split("commit ")[1].split()[0]
    assert len(commit) == 40 and f"hf://{REPO}@{commit}" in out
    block = yaml.safe_load(out.split("pin it in a card:\n", 1)[1])["weights"]
    assert block["revision"] == commit and block["file"] == "model.safetensors"
    _register_card(tmp_path, "tiny-cli", block)

    _fresh_cache(monkeypatch, tmp_path / "cache")
    assert main(["download", REPO]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{REPO}@{commit}" and Path(lines[1].strip()).name == commit
    assert {"model.safetensors", "config.json", "README.md"} <= {s.strip() for s in lines[2:]}
    assert main(["download", "tiny-cli"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{REPO}@{commit}" and lines[1].strip().endswith("model.safetensors")

    local_hub.stop()  # no server at all: the warm cache must do
    set_offline(monkeypatch)
    original = zoo.load(runs[0])
    for name in (REPO, f"hf://{REPO}@{commit}", "tiny-cli"):
        model = zoo.load(name)
        assert _same(model, original) and model.info["revision"] == commit, name

    _fresh_cache(monkeypatch, tmp_path / "cold")
    for name, missing in ((REPO, "config.json"), ("tiny-cli", "model.safetensors")):
        with pytest.raises(HubError) as err:
            zoo.load(name)
        msg = str(err.value)
        assert REPO in msg and missing in msg and "HF_HUB_OFFLINE" in msg and "zoo download" in msg, msg
    assert main(["download", REPO]) == 1
    assert "HF_HUB_OFFLINE" in capsys.readouterr().err


def test_interrupted_weights_download_resumes(local_hub, runs, monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 1000)
    push(runs[0], REPO)
    size = (runs[0] / "model.safetensors").stat().st_size
    local_hub.interrupt_next_download(REPO, "model.safetensors", after_bytes=size // 2)
    model = zoo.load(REPO)
    assert _same(model, zoo.load(runs[0]))
    gets = [h.get("Range") for m, p, h in local_hub.requests if m == "GET" and p.endswith("/model.safetensors")]
    assert gets[0] is None and len(gets) == 2 and gets[1].startswith("bytes=")


# -- bad input ------------------------------------------------------------------------------------------------
def test_corrupted_download_is_refused_and_never_loads_later(local_hub, runs, fresh_registry, tmp_path, monkeypatch):
    pushed = push(runs[0], REPO)
    _register_card(tmp_path, "tiny-corrupt", pushed["weights"])
    local_hub.corrupt(REPO, "model.safetensors")
    for name in (REPO, "tiny-corrupt"):
        with pytest.raises(ChecksumError) as err:
            zoo.load(name)
        msg = str(err.value)
        assert REPO in msg and "model.safetensors" in msg and pushed["weights"]["sha256"] in msg
    set_offline(monkeypatch)  # nothing was left in the cache that could load as good
    for name in (REPO, "tiny-corrupt"):
        with pytest.raises(HubError) as err:
            zoo.load(name)
        assert not isinstance(err.value, ChecksumError) and "model.safetensors" in str(err.value)


def test_card_sha256_mismatch_is_refused(local_hub, runs, fresh_registry, tmp_path):
    pushed = push(runs[0], REPO)
    _register_card(tmp_path, "tiny-badsha", {**pushed["weights"], "sha256": "0" * 64})
    with pytest.raises(ChecksumError) as err:
        zoo.load("tiny-badsha")
    msg = str(err.value)
    assert "0" * 64 in msg and pushed["weights"]["sha256"] in msg and REPO in msg and pushed["commit"] in msg


def test_push_without_token_says_how_to_log_in(local_hub, runs, monkeypatch, capsys):
    from tools.hub_server import iter_files

    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(HubError) as err:
        push(runs[0], REPO)
    assert "hf auth login" in str(err.value) and "HF_TOKEN" in str(err.value) and REPO in str(err.value)
    assert main(["push", str(runs[0]), "--repo", REPO]) == 1
    assert "hf auth login" in capsys.readouterr().err
    assert main(["push", str(runs[0]), "--repo", REPO, "--token", local_hub.token]) == 0
    assert "model.safetensors" in list(iter_files(local_hub, REPO))


def test_repo_revision_and_file_not_found_name_the_thing(local_hub, runs, fresh_registry, tmp_path):
    with pytest.raises(RepoNotFound, match="test-user/nope"):
        zoo.load("test-user/nope")
    pushed = push(runs[0], REPO)
    with pytest.raises(RevisionNotFound) as err:
        zoo.load(f"hf://{REPO}@v404")
    assert "v404" in str(err.value) and REPO in str(err.value)
    with pytest.raises(FileNotFound) as err:
        zoo.load(REPO, weights="model_ema.safetensors")
    assert "model_ema.safetensors" in str(err.value) and REPO in str(err.value)
    _register_card(tmp_path, "tiny-nofile", {**pushed["weights"], "file": "nope.safetensors"})
    with pytest.raises(FileNotFound) as err:
        zoo.load("tiny-nofile")
    assert "nope.safetensors" in str(err.value) and REPO in str(err.value)
    _register_card(tmp_path, "tiny-norev", {**pushed["weights"], "revision": "v9"})
    with pytest.raises(RevisionNotFound, match="v9"):
        zoo.load("tiny-norev")


def test_repo_that_is_not_a_zoo_model(local_hub, tmp_path):
    from zoo.hub import push_folder

    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "weights.bin").write_bytes(b"x" * 10)
    push_folder(tmp_path / "other", "test-user/other")
    with pytest.raises(FileNotFound) as err:
        zoo.load("test-user/other")
    assert "config.json" in str(err.value) and "zoo push" in str(err.value)


@pytest.mark.parametrize("field, value, expected", [
    ("license", ["mit", "apache-2.0"], "license"),
    ("license", "my-own-licence", "license"),
    ("tags", {"a": 1}, "tags"),
    ("datasets", ["not a repo id"], "datasets"),
    ("base_model", 3, "base_model"),
])
def test_invalid_card_metadata_is_refused_before_upload(local_hub, run, field, value, expected):
    config = json.loads((run / "config.json").read_text())
    config["metadata"][field] = value
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(CardError) as err:
        push(run, REPO)
    assert str(run / "config.json") in str(err.value) and f"'{expected}'" in str(err.value)
    assert not (local_hub.root / "models" / "test-user" / "tiny-vae").exists()  # nothing was pushed


def test_invalid_model_index_is_refused(run):
    from zoo.cards import check_hub_metadata

    text = zoo.read_card(run / "README.md").to_markdown()
    head, body = text.split("\n---", 1)
    front = yaml.safe_load(head[3:])
    del front["model-index"][0]["results"][0]["dataset"]["type"]
    broken = "---\n" + yaml.safe_dump(front) + "---" + body
    with pytest.raises(CardError, match=r"README\.md: field 'model-index\[0\]\.results\[0\]\.dataset'"):
        check_hub_metadata(broken, source=run / "README.md")
    check_hub_metadata(text, source=run / "README.md")  # the rendered card itself is fine


def test_run_folder_without_weights_or_with_wrong_weights(local_hub, run, tmp_path):
    from safetensors.torch import save_file

    shutil.copyfile(run / "model.safetensors", tmp_path / "keep.safetensors")
    save_file({"encoder.bogus": torch.zeros(2)}, str(run / "model_ema.safetensors"))
    with pytest.raises(WeightsError, match="model_ema.safetensors"):
        push(run, REPO)
    (run / "model.safetensors").unlink()
    with pytest.raises(WeightsError, match="no model.safetensors"):
        push(run, REPO)
    with pytest.raises(WeightsError, match="not a run folder"):
        push(tmp_path / "missing", REPO)
    assert not (local_hub.root / "models" / "test-user").exists()


def test_push_to_a_branch_and_as_a_pull_request(local_hub, runs, capsys):
    main_commit = push(runs[0], REPO)["commit"]
    assert main(["push", str(runs[1]), "--repo", REPO, "--revision", "dev"]) == 0
    dev = zoo.load(f"hf://{REPO}@dev")
    assert _same(dev, zoo.load(runs[1]))
    assert main(["push", str(runs[1]), "--repo", REPO, "--create-pr"]) == 0
    out = capsys.readouterr().out
    assert "pull request:" in out and "/discussions/1" in out
    assert _same(zoo.load(f"hf://{REPO}@refs/pr/1"), zoo.load(runs[1]))
    assert zoo.load(REPO).info["revision"] == main_commit  # main did not move


def test_rendering_is_idempotent(run):
    card = zoo.read_card(run / "README.md")
    once = card.to_markdown(repo_id=REPO)
    again = parse_card(once, name="tiny-vae").to_markdown(repo_id=REPO)
    assert once == again and once.count("<!-- latent-zoo:results:start -->") == 1
    assert parse_card(once, name="tiny-vae").metadata["tags"].count("latent-zoo") == 1
