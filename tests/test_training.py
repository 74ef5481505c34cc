"""The trainer at scale, on CPU: recipe + overrides, EMA, exact resume, NaN stop, bad input, outputs."""
from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import zoo
from zoo.cli import main
from zoo.training.ema import EMA
from zoo.errors import CardError
from zoo.training.stream import epoch_order
from zoo.training.loop import TrainConfig, TrainingError, lr_factor, train
from zoo.training.state import CheckpointManager

from make_cards import make_card

SMALL = dict(objective={"beta": 1.0},
             train={"steps": 30, "batch_size": 64, "lr": 0.003, "seed": 0, "eval_iwae_k": 2, "log_every": 5,
                    "eval_every": 0, "sample_every": 0, "num_samples": 4, "eval_points": 100})

QUICK = dict(progress=False)


def small_card(name: str = "small", train: dict | None = None, **zoo_edit):
    """The small digits VAE; ``train`` adds to its recipe (default keep_checkpoints 5)."""
    recipe = {**SMALL["train"], **(train if train is not None else {"keep_checkpoints": 5})}
    return make_card(name, objective=SMALL["objective"], train=recipe, **zoo_edit)


def weights(folder: Path, name: str = "model.safetensors") -> dict[str, torch.Tensor]:
    return load_file(str(folder / name))


def assert_identical(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# -- recipe -----------------------------------------------------------------------------------

def test_recipe_overrides_and_validation():
    card = small_card()
    config = TrainConfig.from_card(card, lr=0.1, precision="bf16", ema=0.999)
    assert (config.steps, config.batch_size, config.lr, config.precision, config.ema) == (30, 64, 0.1, "bf16", 0.999)
    assert TrainConfig.from_card(card, epochs=2).steps is None  # --epochs replaces the card's steps
    with pytest.raises(CardError, match="precision"):
        TrainConfig.from_card(card, precision="fp8")
    with pytest.raises(CardError, match=r"zoo\.train\.ema"):
        TrainConfig.from_card(small_card(train={'ema': 2.0}))
    with pytest.raises(CardError, match="unknown training option"):
        TrainConfig.from_card(small_card(train={'lr_warmup': 3}))


def test_lr_schedule_warmup_and_data_order():
    f = lr_factor("cosine", 10, 110)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0) and f(60) == pytest.approx(0.5)
    assert f(110) == pytest.approx(0.0) and lr_factor("constant", 0, 5)(3) == 1.0
    assert torch.equal(epoch_order(100, 3, 7), epoch_order(100, 3, 7))
    assert not torch.equal(epoch_order(100, 3, 7), epoch_order(100, 3, 8))


def test_ema_tracks_weights():
    net = torch.nn.Linear(3, 2)
    ema = EMA(net, 0.5)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        net.weight.add_(2.0)
    ema.update(net)
    assert torch.allclose(ema.state_dict()["weight"], before["weight"] + 1.0)
    other = torch.nn.Linear(3, 2)
    ema.copy_to(other)
    assert torch.equal(other.weight, ema.state_dict()["weight"])


# -- a full run: outputs ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ema_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ema") / "run"
    card = small_card(train={'keep_checkpoints': 2, 'ema': 0.9, 'checkpoint_every': 10, 'sample_every': 15, 'eval_every': 15})
    return train(card, out=out, **QUICK)


def test_run_folder_has_ema_raw_checkpoints_metrics_samples(ema_run):
    out = ema_run.folder
    assert {p.name for p in (out / "checkpoints").iterdir()} == {"step-00000020", "step-00000030"}  # keep 2
    ckpt = out / "checkpoints" / "step-00000030"
    assert {"model.safetensors", "ema.safetensors", "optimizer.safetensors", "rng-rank0.safetensors",
            "rng-rank0.json", "state.json"} <= {p.name for p in ckpt.iterdir()}
    # model.safetensors holds the EMA weights, model_raw.safetensors the raw ones
    assert_identical(weights(out), weights(ckpt, "ema.safetensors"))
    assert_identical(weights(out, "model_raw.safetensors"), weights(ckpt, "model.safetensors"))
    results = zoo.read_card(out / "README.md").zoo["results"]
    assert results["weights"] == "ema" and results["ema"] == 0.9 and results["steps"] == 30
    assert ema_run.report["weights"] == "ema"
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    names = {r["metric"] for r in rows}
    assert {"train/loss", "train/elbo", "train/lr", "train/steps_per_s", "eval/elbo", "test/nll"} <= names
    assert [int(r["step"]) for r in rows if r["metric"] == "train/loss"] == [5, 10, 15, 20, 25, 30]
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step-00000015.png", "step-00000030.png"]
    assert any(p.name.startswith("events.out.tfevents") for p in (out / "tensorboard").iterdir())


def test_load_picks_ema_by_default_and_raw_on_request(ema_run):
    ema_model = zoo.load(ema_run.folder)
    raw_model = zoo.load(ema_run.folder, weights="model_raw.safetensors")
    ema_w = ema_model.state_dict()
    assert any(not torch.equal(v, raw_model.state_dict()[k]) for k, v in ema_w.items())
    assert_identical(ema_w, {k: v for k, v in ema_run.model.state_dict().items()})


# -- exact resume ------------------------------------------------------------------------------

RESUME_EXTRA = {"keep_checkpoints": 5, "checkpoint_every": 15, "ema": 0.8, "lr_schedule": "cosine",
                "warmup_steps": 5, "grad_clip": 5.0, "grad_accum": 2}


def test_resume_from_step_n_matches_an_uninterrupted_2n_run_bit_for_bit(tmp_path):
    """30 steps straight == 15 steps, stop, resume for 15 (crosses an epoch: 1497 rows / 64 = 23 steps)."""
    card = small_card(train=RESUME_EXTRA)
    full = train(card, out=tmp_path / "full", **QUICK)
    part = tmp_path / "part"
    (part / "checkpoints").mkdir(parents=True)
    shutil.copytree(full.folder / "checkpoints" / "step-00000015", part / "checkpoints" / "step-00000015")
    torch.manual_seed(123)  # the global RNG state must come from the checkpoint
    resumed = train(card, out=part, resume=True, **QUICK)
    for name in ("model.safetensors", "model_raw.safetensors"):
        assert_identical(weights(full.folder, name), weights(part, name))
    end = "checkpoints/step-00000030"
    assert_identical(weights(full.folder / end, "optimizer.safetensors"), weights(part / end, "optimizer.safetensors"))
    assert resumed.report["elbo"] == full.report["elbo"]
    a, b = (json.loads((f / end / "state.json").read_text()) for f in (full.folder, part))
    assert a["scheduler"] == b["scheduler"] and a["data"] == b["data"] == {
        "epoch": 1, "batch": 7, "global_batch": 64, "spec": "zoo:digits"}


# -- NaN stop ------------------------------------------------------------------------------------

def test_nonfinite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from zoo.model import ELBO

    real, calls = ELBO.loss, {"n": 0}

    def poisoned(self, beta=1.0):
        calls["n"] += 1
        loss = real(self, beta)
        return loss * float("nan") if calls["n"] == 13 else loss

    monkeypatch.setattr(ELBO, "loss", poisoned)
    card = small_card(train={'checkpoint_every': 5})
    with pytest.raises(TrainingError, match=r"stopped at step 13: the loss is nan.*step-00000010 \(step 10\)"):
        train(card, out=tmp_path / "run", **QUICK)
    ckpt = CheckpointManager(tmp_path / "run" / "checkpoints").load_latest()
    assert ckpt.step == 10 and all(torch.isfinite(v).all() for v in ckpt.tensors["model"].values())
    assert not (tmp_path / "run" / "model.safetensors").exists()
    monkeypatch.setattr(ELBO, "loss", real)
    done = train(card, out=tmp_path / "run", resume=True, **QUICK)  # the run continues from the good one
    assert done.report["steps_per_second"] and (tmp_path / "run" / "model.safetensors").is_file()


# -- bad input ---------------------------------------------------------------------------------

def test_resume_without_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "vae-mnist", "--data", "zoo:mnist-5k", "--out", str(tmp_path / "none"), "--resume",
                 "--quiet"]) == 1
    assert "no checkpoint to resume from" in capsys.readouterr().err


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("short") / "run"
    train(small_card(train={'checkpoint_every': 10, 'keep_checkpoints': 3}), out=out, **QUICK)
    return out


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_checkpoint_of_another_architecture_is_refused_and_nothing_changes(short_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(short_run, run)
    before = snapshot(run)
    other = small_card(latent={"shape": [6]})
    with pytest.raises(TrainingError, match=r"written by a run of 'small'.*nothing was changed"):
        train(other, out=run, resume=True, steps=40, **QUICK)
    renamed = small_card(name="other-model")
    with pytest.raises(TrainingError, match="not of 'other-model'"):
        train(renamed, out=run, resume=True, steps=40, **QUICK)
    assert snapshot(run) == before


def test_corrupted_checkpoint_falls_back_to_the_previous_one_and_says_so(short_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(short_run, run)
    newest = run / "checkpoints" / "step-00000030" / "model.safetensors"
    data = bytearray(newest.read_bytes())
    data[-3] ^= 0xFF  # a flipped bit inside the tensor data: safetensors alone would not notice
    newest.write_bytes(bytes(data))
    ckpt = CheckpointManager(run / "checkpoints").load_latest()
    assert ckpt.step == 20 and "step-00000030: model.safetensors is corrupted" in ckpt.skipped[0]
    train(small_card(train={'checkpoint_every': 10, 'keep_checkpoints': 3}), out=run, resume=True, **QUICK)
    err = capsys.readouterr().err
    assert "step-00000030: model.safetensors is corrupted" in err and "falling back to the previous one" in err
    assert "resuming from" in err and "step-00000020 (step 20 of 30)" in err


def test_existing_run_is_not_overwritten_without_resume(short_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(short_run, run)
    before = snapshot(run)
    with pytest.raises(TrainingError, match="already holds a training run"):
        train(small_card(), out=run, **QUICK)
    assert snapshot(run) == before


def test_unwritable_output_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(TrainingError, match="cannot write the run folder"):
        train(small_card(), out=blocker / "run", **QUICK)
    assert blocker.read_text() == "not a folder"
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            with pytest.raises(TrainingError, match="cannot write the run folder"):
                train(small_card(), out=locked / "run", **QUICK)
        finally:
            locked.chmod(0o700)


def test_fp16_on_cpu_is_refused(tmp_path):
    with pytest.raises(TrainingError, match="fp16 needs a GPU"):
        train(small_card(), out=tmp_path / "r", device="cpu", precision="fp16", **QUICK)


# -- streaming ---------------------------------------------------------------------------------

def test_streaming_run_resumes_exactly(tmp_path):
    card = small_card(train={'checkpoint_every': 10, 'keep_checkpoints': 5, 'streaming': True, 'stream_buffer': 200})
    full = train(card, out=tmp_path / "full", steps=20, **QUICK)
    part = tmp_path / "part"
    (part / "checkpoints").mkdir(parents=True)
    shutil.copytree(full.folder / "checkpoints" / "step-00000010", part / "checkpoints" / "step-00000010")
    train(card, out=part, resume=True, steps=20, **QUICK)
    assert_identical(weights(full.folder), weights(part))


def test_bf16_autocast_on_cpu_trains(tmp_path):
    result = train(small_card(), out=tmp_path / "r", precision="bf16", steps=5, **QUICK)
    assert result.report["elbo"] < 0
    assert zoo.read_card(tmp_path / "r" / "README.md").zoo["results"]["mixed_precision"] == "bf16"
