"""Native to the Hugging Face stack: the Hub-standard model API, accelerate that obeys its settings,
honest cards, a light core package and a complete CLI."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

import zoo
from zoo.cli import main
from zoo.errors import TrainingError

from make_cards import make_card
from test_training import small_card

ROOT = Path(__file__).resolve().parents[1]
QUICK = dict(progress=False)
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=:DeprecationWarning")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    zoo.train(small_card(train={"steps": 10, "num_samples": 4}), out=out, **QUICK)
    return out


def _same(a, b, x=None):
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0)) if x is None else x
    return torch.equal(a.reconstruct(x), b.reconstruct(x))


# -- the model API -----------------------------------------------------------------------------------------
def test_save_pretrained_and_from_pretrained_round_trip(trained, tmp_path):
    model = zoo.LatentModel.from_pretrained(trained, dtype=torch.float64)
    assert model.dtype == torch.float64
    model = model.float()
    folder = model.save_pretrained(tmp_path / "saved")
    assert {p.name for p in folder.iterdir()} >= {"model.safetensors", "config.json", "README.md"}
    again = zoo.LatentModel.from_pretrained(folder)
    assert _same(model, again)
    built = zoo.build("vae-digits")                     # a model built in Python, never trained: still saveable
    built.save_pretrained(tmp_path / "built")
    assert _same(built.eval(), zoo.load(tmp_path / "built"))


def test_push_to_hub_and_from_pretrained_through_the_hub(trained, local_hub, tmp_path):
    model = zoo.load(trained)
    result = model.push_to_hub("someone/pushed-from-python")
    assert len(result["commit"]) == 40
    cache = tmp_path / "cache"
    loaded = zoo.LatentModel.from_pretrained("someone/pushed-from-python", cache_dir=str(cache),
                                             revision=result["commit"])
    assert _same(model, loaded) and loaded.info["revision"] == result["commit"]
    assert any(cache.rglob("model.safetensors"))                      # cache_dir= was used
    offline = zoo.LatentModel.from_pretrained("hf-hub:someone/pushed-from-python", cache_dir=str(cache),
                                              revision=result["commit"], local_files_only=True)
    assert _same(model, offline)


def test_pretrained_weights_are_loaded_into_an_empty_model_without_patching_init(monkeypatch):
    """Loading a run builds the model with parameters on the meta device (no random initialisation) and
    never replaces torch.nn.init functions."""
    import torch.nn.init as init

    from zoo.assemble import build_model

    before = {name: getattr(init, name) for name in dir(init) if name.endswith("_")}
    model = build_model(zoo.get_card("ddpm-cifar10"), empty=True)
    assert all(p.is_meta for p in model.parameters())
    assert not any(b.is_meta for b in model.buffers())                 # buffers (schedules, anchors) stay real
    assert {name: getattr(init, name) for name in before} == before


# -- accelerate and training integrations ----------------------------------------------------------------
def test_precision_comes_from_accelerate_when_not_given(tmp_path, monkeypatch):
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    result = zoo.train(small_card(train={"steps": 3}), out=tmp_path / "a", **QUICK)
    assert result.report and json.loads((tmp_path / "a" / "config.json").read_text())["zoo"]["results"]["mixed_precision"] == "bf16"
    zoo.train(small_card(train={"steps": 3}), out=tmp_path / "b", precision="no", **QUICK)   # the flag wins
    assert json.loads((tmp_path / "b" / "config.json").read_text())["zoo"]["results"]["mixed_precision"] == "no"


@pytest.mark.parametrize("var, name", [("ACCELERATE_USE_FSDP", "FSDP"), ("ACCELERATE_USE_DEEPSPEED", "DeepSpeed")])
def test_fsdp_and_deepspeed_are_refused_clearly(tmp_path, monkeypatch, var, name):
    monkeypatch.setenv(var, "true")
    with pytest.raises(TrainingError, match=rf"{name} is not supported by the zoo trainer \(DDP only\)"):
        zoo.train(small_card(), out=tmp_path / "r", **QUICK)


@pytest.mark.integration
def test_accelerate_launch_runs_the_cli_on_two_cpu_processes(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                           "--num_machines", "1", "--mixed_precision", "bf16", "--dynamo_backend", "no",
                           "-m", "zoo.cli", "train", "vae-digits", "--out", str(out), "--steps", "4",
                           "--batch-size", "64", "--quiet", "--eval-iwae-k", "2"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "config.json").read_text())["zoo"]["results"]
    assert results["processes"] == 2 and results["mixed_precision"] == "bf16" and results["steps"] == 4


def test_trackers_optimisers_schedulers_best_checkpoint_and_callbacks(tmp_path):
    events = []
    out = tmp_path / "run"
    result = zoo.train(small_card(train={"steps": 12, "eval_every": 4, "log_every": 4}), out=out, report_to="none",
                       optimizer="sgd", optimizer_args={"momentum": 0.9}, lr_schedule="StepLR",
                       lr_schedule_args={"step_size": 5, "gamma": 0.5}, keep_best=True,
                       callbacks=[lambda event, loop, **info: events.append((event, loop.step))], **QUICK)
    assert not (out / "tensorboard").exists()                        # report_to none: metrics.csv only
    lrs = [float(r.split(",")[2]) for r in (out / "metrics.csv").read_text().splitlines()[1:] if ",train/lr," in r]
    assert lrs[0] == pytest.approx(0.003) and lrs[-1] == pytest.approx(0.003 * 0.5 ** 2)   # StepLR took effect
    results = json.loads((out / "config.json").read_text())["zoo"]["results"]
    assert (out / "model_best.safetensors").is_file() and results["best"]["step"] in (4, 8, 12)
    assert json.loads((out / "config.json").read_text())["zoo"]["train"]["optimizer"] == "sgd"
    kinds = [e for e, _ in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("step") == 12
    assert {"log", "eval", "checkpoint"} <= set(kinds) and result.report
    with pytest.raises(TrainingError, match="--report-to wandb: the wandb package is not installed"):
        zoo.train(small_card(), out=tmp_path / "w", report_to="wandb", **QUICK)


def test_several_processes_on_one_machine_share_its_cores(monkeypatch):
    from zoo.training.engine import default_threads

    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert default_threads(torch.device("cpu"), None) == max(1, (os.cpu_count() or 1) // 2)
    assert default_threads(torch.device("cpu"), 3) == 3
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert default_threads(torch.device("cpu"), None) is None
    from zoo.cli import build_parser

    train = [a for a in build_parser()._subparsers._group_actions[0].choices["train"]._actions if a.dest == "threads"][0]
    assert "cores // processes" in train.help


# -- cards on the Hub ----------------------------------------------------------------------------------
def test_pushed_cards_are_honest(trained, local_hub, tmp_path):
    from huggingface_hub import HfApi, ModelCard

    from tools.hub_server import iter_files
    from zoo.hub.publish import push

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    shutil.copyfile(run / "model.safetensors", run / "model_raw.safetensors")
    push(run, "someone/honest")
    (run / "model_raw.safetensors").unlink()
    push(run, "someone/honest")                                          # a re-push drops the stale variant
    files = list(iter_files(local_hub, "someone/honest"))
    assert "model_raw.safetensors" not in files and "samples.png" in files
    card = ModelCard.load("someone/honest")
    assert "pip install latent-zoo" in card.text and 'zoo.load("hf://someone/honest")' in card.text
    assert "![samples from this model](samples.png)" in card.text
    assert "No pretrained weights" not in card.text and "zoo-" not in json.dumps(card.data.to_dict())
    assert card.data.eval_results[0].dataset_type == "sklearn-docs/digits"
    assert HfApi().model_info("someone/honest").sha


def test_tags_come_from_what_components_declare_and_conversions_are_not_finetunes():
    from zoo.cards import hub_metadata

    assert "gmm" in hub_metadata(zoo.get_card("gmm-digits"))["tags"] and "vae" not in hub_metadata(
        zoo.get_card("gmm-digits"))["tags"]
    assert "hierarchical-vae" in hub_metadata(zoo.get_card("hvae-digits"))["tags"]
    meta = hub_metadata(zoo.get_card("ddpm-cifar10"))
    assert meta["base_model"] == "google/ddpm-cifar10-32" and meta["base_model_relation"] == "quantized"


def test_a_carved_split_is_labelled_as_carved(tmp_path):
    import datasets
    import numpy as np

    rng = np.random.default_rng(0)
    ds = datasets.Dataset.from_dict({"image": [rng.integers(0, 255, (8, 8), dtype=np.uint8) for _ in range(50)]},
                                    features=datasets.Features({"image": datasets.Image()}))
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "only-train"))
    zoo.train(small_card(train={"steps": 2, "batch_size": 16}), out=tmp_path / "run", data=str(tmp_path / "only-train"),
              **QUICK)
    results = json.loads((tmp_path / "run" / "config.json").read_text())["zoo"]["results"]
    assert results["split_label"].startswith("test (carved: 5 of the 50 'train' rows")


# -- package and CLI ---------------------------------------------------------------------------------------
def test_version_json_help_and_card_files(trained, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"latent-zoo {zoo.__version__}"
    card = tmp_path / "my-card.md"
    card.write_text((ROOT / "cards" / "vae-digits.md").read_text())
    assert main(["train", str(card), "--out", str(tmp_path / "r"), "--steps", "3", "--quiet", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "my-card" and Path(report["folder"]).name == "r"
    assert main(["info", str(card)]) == 0 and "my-card" in capsys.readouterr().out
    from zoo.cli import build_parser
    import argparse

    sub = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)][0]
    missing = [(name, a.option_strings or a.dest) for name, p in sub.choices.items() for a in p._actions
               if a.help is None and a.dest != "help"]
    assert not missing, missing


@pytest.mark.integration
def test_the_light_core_loads_and_samples_without_extras(local_hub, trained, tmp_path):
    """The wheel's core requirements hold no extra, and zoo.load + sampling of a Hub model work with every
    optional package (timm, torchvision, tensorboard, matplotlib, mlxtend, scikit-learn, diffusers) hidden."""
    from zoo.hub.publish import push

    commit = push(trained, "someone/light")["commit"]
    wheels, site, src = tmp_path / "wheels", tmp_path / "site", tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "runs", "*.egg-info",
                                                            "__pycache__", ".pytest_cache"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels),
                    str(src)], check=True, capture_output=True)
    wheel = next(wheels.glob("latent_zoo-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith("METADATA"))).decode()
        assert any(n.endswith("licenses/LICENSE") for n in z.namelist())
    core = [line.split(":", 1)[1].strip() for line in meta.splitlines()
            if line.startswith("Requires-Dist:") and "extra ==" not in line]
    names = {c.split(">")[0].split("=")[0].split("<")[0].split(";")[0].strip().lower() for c in core}
    assert names == {"torch", "huggingface-hub", "safetensors", "datasets", "pluggy", "pyyaml", "numpy", "pillow",
                     "tqdm", "filelock", "accelerate"}, names
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site),
                    str(wheel)], check=True, capture_output=True)
    core_site = _only(core, tmp_path / "core-site")        # the core requirements and theirs, nothing else
    code = (f"import sys\nimport zoo\nm = zoo.load('hf://someone/light@{commit}')\n"
            "x = m.sample(4)\nassert x.shape == (4, 1, 8, 8) and float(x.min()) >= 0 and float(x.max()) <= 1\n"
            "assert zoo.__file__.startswith(sys.argv[1])\n"
            "import importlib.util\n"
            "assert all(importlib.util.find_spec(n) is None for n in ('timm', 'torchvision', 'tensorboard', "
            "'matplotlib', 'mlxtend', 'sklearn', 'diffusers')), 'an extra leaked in'\nprint('ok')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(core_site)])
    # -S: not the test environment's site-packages; only the wheel and the core's dependency closure
    out = subprocess.run([sys.executable, "-S", "-c", code, str(site)], env=env, capture_output=True, text=True,
                         cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


def _only(requirements: list[str], folder: Path) -> Path:
    """A site folder holding (as symbolic links) the installed distributions that ``requirements`` need,
    transitively, without extras: what ``pip install latent-zoo`` would bring."""
    from importlib import metadata

    from packaging.requirements import Requirement

    folder.mkdir()
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = req.name.lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue
        todo += [Requirement(r) for r in (dist.requires or [])]
        for top in {Path(f.parts[0]) for f in dist.files or [] if f.parts and not f.parts[0].startswith("..")}:
            src = Path(dist.locate_file(top))
            if src.exists() and not (folder / top.name).exists() and top.name not in ("bin", "__pycache__"):
                (folder / top.name).symlink_to(src)
    return folder
