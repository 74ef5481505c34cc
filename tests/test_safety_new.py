"""Issue 21: the commands added since the last safety release, held to its standard -- nothing runs, nothing is
lost, nothing is silent.  Each case checks the named error, the exit code, and where something could be written,
the files before and after (``snapshot``: the sha256 of every file)."""
from __future__ import annotations

import errno
import json
import os
import pickle
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from zoo.cli import main
from zoo.errors import (DataError, InputError, TrainingError, UnknownModelError, UsageError, WeightsError)

from make_cards import card_markdown
from test_safety import snapshot
from test_training import small_card

QUICK = dict(progress=False)


class Payload:
    """A pickle that, when unpickled, writes a marker file (the "code from a file runs" probe)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "ran"))


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny finished run (3 steps), shared read-only by the tests below."""
    out = tmp_path_factory.mktemp("shared") / "run"
    zoo.train(small_card(train={"steps": 3}), out=out, **QUICK)
    return out


def copy_run(run: Path, to: Path) -> Path:
    import shutil

    shutil.copytree(run, to)
    return to


HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from zoo.store.run_lock import RunLock
    lock = RunLock(sys.argv[1]).acquire()
    print("LOCKED", flush=True)
    time.sleep(60)
""")


def hold_lock(folder: Path) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(folder)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "LOCKED"
    return holder


# -- code from a file never runs ------------------------------------------------------------------------------
def test_inception_weights_are_checked_by_sha256_before_anything_reads_them(tmp_path, capsys):
    from zoo.quality.fidelity import fidelity_metrics

    marker = tmp_path / "PWNED"
    payload = tmp_path / "inception.pth"
    torch.save({"x": Payload(marker)}, payload)
    noise = tmp_path / "noise.pth"
    noise.write_bytes(os.urandom(4096))
    tensors = tmp_path / "other.pth"
    torch.save({"w": torch.zeros(3)}, tensors)
    images = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
    for path in (payload, noise, tensors):
        with pytest.raises(WeightsError, match=rf"Inception weights file {path} has \d+ bytes, not the 95628359.*"
                                               r"6726825d0af5f729.*it is not read"):
            fidelity_metrics(images, images, features="inception", inception_path=path, metrics=("fid",))
    assert not marker.exists()
    os.environ["ZOO_INCEPTION_WEIGHTS"] = str(payload)
    try:
        assert main(["evaluate", "vae-digits", "--features", "inception", "--n", "8", "--metrics", "fid"]) == 1
    finally:
        del os.environ["ZOO_INCEPTION_WEIGHTS"]
    assert f"Inception weights file {payload} has" in capsys.readouterr().err
    assert not marker.exists()


def test_a_pickle_with_the_pinned_hash_is_still_read_as_tensors_only(tmp_path, monkeypatch):
    """Even a file that passes the pin (here a pickle pinned for the test) is read with weights_only=True."""
    from zoo.quality.features import sha256_of
    from zoo.quality.inception import read_inception, verify_inception

    marker = tmp_path / "PWNED"
    payload = tmp_path / "inception.pth"
    torch.save({"x": Payload(marker)}, payload)
    monkeypatch.setattr("zoo.quality.inception.INCEPTION_SHA256", sha256_of(payload))
    monkeypatch.setattr("zoo.quality.inception.INCEPTION_BYTES", payload.stat().st_size)
    assert verify_inception(payload) == sha256_of(payload)
    with pytest.raises(WeightsError, match="cannot be read as tensors only"):
        read_inception(payload)
    assert not marker.exists()


# -- nothing is lost ------------------------------------------------------------------------------------------
def test_fit_prior_never_replaces_a_live_run(run, tmp_path, capsys):
    live = copy_run(run, tmp_path / "live")
    holder = hold_lock(live)
    try:
        before = snapshot(live)
        assert main(["fit-prior", str(run), "--prior", "gmm", "--out", str(live), "--overwrite", "--k", "0",
                     "--max-points", "20", "--components", "2"]) == 1
        assert f"being written by another latent-zoo process (pid {holder.pid})" in capsys.readouterr().err
        assert snapshot(live) == before
    finally:
        holder.kill()
        holder.wait()


def test_fit_prior_run_folder_follows_the_umask(run, tmp_path):
    from zoo.posthoc import fit_prior

    out = tmp_path / "fitted"
    mask = os.umask(0o022)
    try:
        fit_prior(run, prior="gmm", out=out, iwae_k=0, max_points=50, components=2)
    finally:
        os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert (out / "model.safetensors").is_file() and not list(tmp_path.glob(".fitted.staging-*"))
    assert json.loads((out / ".zoo-run").read_text())["card"] == "small-mixture-of-gaussians"


def test_compare_refuses_a_folder_of_the_users_files_and_checks_every_name_first(tmp_path, capsys):
    from zoo.compare import compare

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "compare.md").write_text("my table\n")
    before = snapshot(mine)
    with pytest.raises(TrainingError, match=r"--out .*mine is not empty and is not a latent-zoo compare folder "
                                            r"\(it holds compare.md\); choose an empty or new folder$"):
        compare(["vae-digits"], "zoo:digits", mine)
    assert snapshot(mine) == before
    from zoo.store.run_lock import folder_kind

    earlier = tmp_path / "earlier"  # a compare folder of an earlier version (no marker) is still recognised
    earlier.mkdir()
    (earlier / "compare.json").write_text(json.dumps({"data": "zoo:digits", "split": "test", "mi_split": "train",
                                                      "command": None, "models": []}))
    assert folder_kind(earlier) == "compare" and folder_kind(mine) is None
    fresh = tmp_path / "fresh"
    started = time.perf_counter()
    assert main(["compare", "vae-digits", "no-such-model", "--out", str(fresh)]) == 2
    assert "unknown model 'no-such-model'" in capsys.readouterr().err
    assert time.perf_counter() - started < 20 and not fresh.exists()  # refused before measuring vae-digits


def test_save_pretrained_never_mixes_folders_or_replaces_a_users_readme(run, tmp_path):
    model = zoo.load(run)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "README.md").write_text("# my notes\n")
    before = snapshot(mine)
    with pytest.raises(TrainingError, match=r"save_pretrained: .*mine is not empty and is not a latent-zoo model "
                                            r"folder \(it holds README.md\).*overwrite=True"):
        model.save_pretrained(mine)
    with pytest.raises(TrainingError, match="would replace README.md, which latent-zoo did not write"):
        model.save_pretrained(mine, overwrite=True)
    assert snapshot(mine) == before
    trained = copy_run(run, tmp_path / "trained")
    before = snapshot(trained)
    with pytest.raises(TrainingError, match=r"holds a training run, not a model folder.*overwrite=True"):
        model.save_pretrained(trained)
    assert snapshot(trained) == before
    model.save_pretrained(trained, overwrite=True)  # the run is replaced whole: no old checkpoints left beside
    assert not (trained / "checkpoints").exists() and not (trained / "metrics.csv").exists()
    assert json.loads((trained / ".zoo-run").read_text())["kind"] == "model"
    again = model.save_pretrained(tmp_path / "saved")
    model.save_pretrained(again)  # its own earlier save is replaced
    assert zoo.load(again).card.name == model.card.name


def test_overwrite_removes_the_old_model_best(tmp_path):
    out = tmp_path / "run"
    zoo.train(small_card(train={"steps": 4, "keep_best": True, "eval_every": 2}), out=out, **QUICK)
    assert (out / "model_best.safetensors").is_file()
    zoo.train(small_card("other", train={"steps": 2}), out=out, overwrite=True, **QUICK)
    assert not (out / "model_best.safetensors").exists()
    with pytest.raises(WeightsError, match="model_best.safetensors does not exist"):
        zoo.load(out, weights="model_best.safetensors")


def test_sweep_refuses_a_folder_of_the_users_files(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "sweep.md").write_text("mine\n")
    before = snapshot(mine)
    assert main(["sweep", "vae-digits", "--beta", "1", "--out", str(mine), "--steps", "2", "--quiet"]) == 1
    assert "not a latent-zoo sweep folder (it holds sweep.md)" in capsys.readouterr().err
    assert snapshot(mine) == before
    theirs = tmp_path / "a-sweep"
    theirs.mkdir()
    (theirs / ".zoo-run").write_text('{"card": "vae-digits", "kind": "sweep"}\n')
    with pytest.raises(TrainingError, match="holds a `zoo sweep` folder, not a training run"):
        zoo.train(small_card(train={"steps": 2}), out=theirs, overwrite=True, **QUICK)


# -- no wrong result without an error -------------------------------------------------------------------------
def test_a_feature_network_of_other_images_is_refused(tmp_path):
    from zoo.quality.features import feature_network
    from zoo.quality.fidelity import fidelity_metrics

    digits = torch.zeros(6, 1, 8, 8, dtype=torch.uint8)
    with pytest.raises(UsageError, match=r"--features mnist-5k-cnn: a network for images of shape \[1, 28, 28\] "
                                         r"\(zoo:mnist-5k\), but these images have shape \[1, 8, 8\]"):
        fidelity_metrics(digits, digits, features=feature_network("mnist-5k-cnn"), metrics=("fid",))
    assert main(["evaluate", "vae-digits", "--features", "mnist-5k-cnn", "--n", "8"]) == 2


def test_traversals_of_a_discrete_latent_are_refused(tmp_path, capsys):
    for command in ("traverse", "interpolate"):
        out = tmp_path / f"{command}.png"
        assert main([command, "gmm-digits", "--out", str(out), "--max-points", "50"]) == 2
        assert "gmm-digits has a discrete latent" in capsys.readouterr().err
        assert not out.exists()


@pytest.mark.parametrize("args, flag", [(["interpolate", "--pairs", "0"], "--pairs"),
                                        (["interpolate", "--pairs", "-2"], "--pairs"),
                                        (["traverse", "--max-dims", "0"], "--max-dims")])
def test_numeric_options_are_checked_by_the_cli(tmp_path, capsys, args, flag):
    out = tmp_path / "grid.png"
    with pytest.raises(SystemExit) as e:
        main([args[0], "vae-digits", *args[1:], "--out", str(out)])
    assert e.value.code == 2 and flag in capsys.readouterr().err and not out.exists()
    from zoo.traversal import choose_dims, pick_pairs

    with pytest.raises(InputError, match="--pairs 0: must be >= 1"):
        pick_pairs(10, 0)
    with pytest.raises(InputError, match="--max-dims 0: must be >= 1"):
        choose_dims("auto", torch.ones(3), torch.randn(5, 3), max_dims=0)


def test_resume_announces_changed_options_and_records_them_per_segment(tmp_path, capsys):
    out = tmp_path / "run"
    card = small_card(train={"checkpoint_every": 5, "steps": 5})
    zoo.train(card, out=out, command="zoo train small --out run", **QUICK)
    zoo.train(card, out=out, resume=True, beta=4.0, steps=10, lr=0.01, batch_size=32, **QUICK)
    err = capsys.readouterr().err
    assert ("resuming from step 5 with changed steps 5 -> 10, lr 0.003 -> 0.01, batch_size 64 -> 32, beta 1.0 -> 4.0: "
            "recorded as a new segment of the run") in err
    z = json.loads((out / "config.json").read_text())["zoo"]
    assert z["objective"]["beta"] == 1.0 and z["train"]["lr"] == 0.003 and z["train"]["batch_size"] == 64
    assert z["results"]["command"] == "zoo train small --out run" and z["results"]["steps"] == 10
    assert z["results"]["segments"] == [
        {"from_step": 0, "beta": 1.0, "command": "zoo train small --out run"},
        {"from_step": 5, "beta": 4.0, "changed": {"lr": 0.01, "batch_size": 32, "steps": 10, "beta": 4.0}}]


def test_resuming_a_finished_run_keeps_its_command_and_training_time(tmp_path):
    out = tmp_path / "run"
    card = small_card(train={"steps": 4})
    zoo.train(card, out=out, command="zoo train small --out run", **QUICK)
    before = json.loads((out / "config.json").read_text())["zoo"]["results"]
    zoo.train(card, out=out, resume=True, command="zoo train small --out run --resume", **QUICK)
    after = json.loads((out / "config.json").read_text())["zoo"]["results"]
    assert after["command"] == before["command"] == "zoo train small --out run"
    assert after["train_seconds"] == before["train_seconds"] and after["steps"] == before["steps"] == 4


def test_data_config_on_local_data_is_an_error(tmp_path):
    from zoo.data import load_tensors

    folder = tmp_path / "images"
    folder.mkdir()
    with pytest.raises(DataError, match=r"--data-config 'x' applies to Hub datasets only; this is a local folder"):
        load_tensors(str(folder), "train", config="x")
    with pytest.raises(DataError, match="this is a built-in dataset"):
        load_tensors("zoo:digits", "train", config="x")


def test_diagnose_of_a_run_uses_the_runs_own_data(run, tmp_path):
    from zoo.cli.commands import run_data

    folder = copy_run(run, tmp_path / "run")
    config = json.loads((folder / "config.json").read_text())
    config["zoo"]["results"]["dataset"] = str(tmp_path / "my-images")  # as `zoo train --data FOLDER` records it
    (folder / "config.json").write_text(json.dumps(config))
    model = zoo.load(folder)
    assert run_data(str(folder), model) == str(tmp_path / "my-images")
    assert run_data("vae-digits", zoo.load("vae-digits")) == "zoo:digits"


@pytest.mark.parametrize("command", [["sample", "vae-digits", "--n", "4"], ["traverse", "vae-digits"],
                                     ["interpolate", "vae-digits"], ["diagnose", "vae-digits", "--k", "0", "--plot"]])
def test_an_image_name_the_writer_cannot_write_is_refused(tmp_path, capsys, command):
    out = tmp_path / "grid.txt"
    flag = "--plot" if command[-1] == "--plot" else "--out"
    argv = [*command, str(out)] if flag == "--plot" else [*command, "--out", str(out)]
    assert main(argv) == 2
    assert f"{flag} {out}: the image is written as PNG; give a file name ending in .png" in capsys.readouterr().err
    assert not out.exists()


def test_info_of_a_card_that_cannot_be_built_is_an_error(tmp_path, capsys):
    path = tmp_path / "broken.md"
    path.write_text(card_markdown("broken", encoder={"name": "mlp", "hidden": [512, "x"]}))
    assert main(["info", str(path)]) == 2
    assert "field 'zoo.encoder'" in capsys.readouterr().err


# -- no raw traceback -----------------------------------------------------------------------------------------
def test_a_damaged_data_cache_is_rebuilt_with_a_warning(tmp_path, monkeypatch):
    from zoo.data import clear_memo, load_tensors
    from zoo.data.embedded import data_cache_dir

    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    clear_memo()
    good = load_tensors("zoo:digits", "test").clone()
    (cached,) = data_cache_dir().rglob("test.npy")
    damages = {"truncated": cached.read_bytes()[:100],
               "pickled": pickle.dumps(np.zeros(3, dtype=object))}
    for what, data in damages.items():
        cached.write_bytes(data)
        clear_memo()
        with pytest.warns(UserWarning, match=r"decoded-data cache .*test.npy is damaged .*rebuilding it"):
            again = load_tensors("zoo:digits", "test")
        assert torch.equal(again, good), what
    clear_memo()


def test_a_full_disk_while_taking_the_lock_is_named(tmp_path, monkeypatch):
    from zoo.store.run_lock import LOCK_PID, RunLock

    real = Path.write_text

    def full(self, *args, **kwargs):
        if self.name == LOCK_PID:
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(TrainingError, match=r"cannot write .*\.zoo-run\.lock\.pid: No space left on device "
                                            r"\(the disk is full\)"):
        RunLock(tmp_path / "run").acquire()
    assert RunLock(tmp_path / "run")  # the lock was released: nothing held


def test_weights_stored_as_int64_are_a_named_error(run, tmp_path):
    from safetensors.torch import load_file, save_file

    from zoo.loading import load_folder

    folder = copy_run(run, tmp_path / "run")
    state = {k: v.to(torch.int64) for k, v in load_file(str(folder / "model.safetensors")).items()}
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(WeightsError, match=r"hold tensors of another kind of dtype .*: file int64 vs model float32"):
        load_folder(folder)


@pytest.mark.parametrize("repo", ["someone/..evil", "someone/" + "x" * 120, "a--b/c", "one/two/three"])
def test_bad_repo_ids_are_refused_before_the_hub_client_sees_them(run, monkeypatch, capsys, repo):
    import huggingface_hub

    def no_hub(*args, **kwargs):
        raise AssertionError("the Hub client was called")

    monkeypatch.setattr(huggingface_hub, "HfApi", no_hub)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_hub)
    assert main(["push", str(run), "--repo", repo]) == 2
    assert "is not a valid Hub repo id" in capsys.readouterr().err
    assert main(["download", f"hf://{repo}"]) == 2
    assert "is not a valid Hub repo id" in capsys.readouterr().err


def test_a_sample_count_that_cannot_be_allocated_is_named(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr("zoo.cli.commands.available_bytes", lambda: 2 ** 30)
    out = tmp_path / "s.png"
    assert main(["sample", "vae-digits", "--n", "100000000", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "--n 100000000: 100000000 samples of shape [1, 8, 8] need about" in err and "ask for fewer" in err
    assert not out.exists()


# -- plugins --------------------------------------------------------------------------------------------------
def plugin(tmp_path, monkeypatch, module: str, source: str) -> None:
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
    dist = module.replace("_", "-")
    info = tmp_path / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[zoo]\n{module} = {module}\n")
    monkeypatch.syspath_prepend(str(tmp_path))


@pytest.fixture
def interrupting_plugin(tmp_path, monkeypatch):
    plugin(tmp_path, monkeypatch, "zoo_interrupts", "raise KeyboardInterrupt\n")
    yield
    sys.modules.pop("zoo_interrupts", None)


@pytest.fixture
def hanging_plugin(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_PLUGIN_TIMEOUT", "1")  # before any registry is built with the plugin installed
    plugin(tmp_path, monkeypatch, "zoo_hangs", """
        import time
        from zoo.hookspecs import hookimpl

        @hookimpl
        def register_priors(register):
            time.sleep(20)
        """)
    yield
    sys.modules.pop("zoo_hangs", None)


def test_keyboard_interrupt_at_plugin_import_is_recorded_like_any_failure(interrupting_plugin, fresh_registry,
                                                                           capsys, monkeypatch):
    from zoo.registry import reset_registry

    reset_registry()
    assert main(["list", "--names", "vae-digits"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "vae-digits"
    assert "plugin zoo_interrupts from zoo-interrupts failed: KeyboardInterrupt" in err
    monkeypatch.setenv("ZOO_STRICT_PLUGINS", "1")
    reset_registry()
    assert main(["list"]) == 1  # strict: named, no traceback
    err = capsys.readouterr().err
    assert err.startswith("zoo: error: plugin 'zoo_interrupts' from zoo-interrupts (zoo_interrupts) failed in import: "
                          "KeyboardInterrupt raised by the plugin's own code") and "Traceback" not in err


def test_a_hanging_plugin_hook_is_named_after_the_time_limit(hanging_plugin, fresh_registry, capsys, monkeypatch):
    from zoo.registry import reset_registry

    reset_registry()
    started = time.perf_counter()
    assert main(["list", "--names", "vae-digits"]) == 0
    assert time.perf_counter() - started < 15
    err = capsys.readouterr().err
    assert "hook register_priors of plugin zoo_hangs (zoo_hangs) did not return within 1 s" in err
    assert "ZOO_PLUGIN_TIMEOUT" in err


def test_dist_name_selects_cards_as_it_selects_components(capsys):
    assert zoo.get_card("latent-zoo:vae-digits").name == "vae-digits"
    assert main(["info", "latent-zoo:vae-digits"]) == 0
    assert capsys.readouterr().out.startswith("vae-digits:")
    with pytest.raises(UnknownModelError, match="unknown model 'someone-else:vae-digits'"):
        zoo.get_card("someone-else:vae-digits")
    assert zoo.load("latent-zoo:vae-digits").name == "vae-digits"


# -- small promises ------------------------------------------------------------------------------------------
def test_sigint_and_sigterm_exit_130(tmp_path, monkeypatch, capsys, request):
    import zoo.training.loop as loop

    # a shell's background job (`pytest &`, nohup) starts with SIGINT ignored, so Ctrl-C would never reach
    # the command; the test gives the process Python's own handler, as a terminal's foreground job has
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))

    after = loop.TrainLoop._after_step

    def terminated_at_3(self):
        after(self)
        if self.step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(loop.TrainLoop, "_after_step", terminated_at_3)
    out = tmp_path / "run"
    assert main(["train", "vae-digits", "--out", str(out), "--steps", "20", "--quiet"]) == 130
    assert "SIGTERM at step 3 of 20: checkpoint written" in capsys.readouterr().err
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-00000003"]
    from zoo.cards import listing

    for sig in (signal.SIGINT, signal.SIGTERM):  # outside training too
        monkeypatch.setattr(listing, "list_models", lambda *a, sig=sig, **k: os.kill(os.getpid(), sig) or [])
        assert main(["list"]) == 130
        assert "zoo list: interrupted" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the previous handler is back


def test_sweep_usage_errors_exit_2(tmp_path, capsys):
    assert main(["sweep", "vae-digits", "--beta", "one,two", "--out", str(tmp_path / "s")]) == 2
    assert "--beta must be comma-separated numbers" in capsys.readouterr().err
    for flag in ("--steps", "--epochs", "--batch-size"):
        with pytest.raises(SystemExit) as e:
            main(["sweep", "vae-digits", flag, "0", "--out", str(tmp_path / "s")])
        assert e.value.code == 2
    assert not (tmp_path / "s").exists()


def test_every_hint_names_a_flag_that_exists(tmp_path, capsys):
    from zoo.cli import build_parser
    from zoo.data.images import CONVERT_HINT

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    for command in ("sample", "diagnose", "evaluate", "fit-prior"):  # the commands the trust hint names
        assert "--trust-modules" in sub[command]._option_string_actions, command
    card = tmp_path / "mine.md"
    card.write_text(card_markdown(
        "mine", base=None, data={"source": "zoo:digits", "shape": [1, 8, 8]}, latent={"shape": [4]},
        encoder={"module": "byo_modules:TinyEncoder", "args": {"data_dims": 64, "latent": 4, "hidden": 32}},
        decoder={"name": "mlp", "hidden": [32], "likelihood": "bernoulli"}, prior={"name": "standard-normal"}))
    assert main(["sample", str(card), "--out", str(tmp_path / "s.png")]) == 2
    err = capsys.readouterr().err
    assert "--trust-modules of zoo sample, diagnose, evaluate and fit-prior" in err
    assert "convert=True" in CONVERT_HINT and "zoo commands read images as they are" in CONVERT_HINT
    assert not any("pass convert=True" in p.read_text() for p in Path(zoo.__file__).parent.rglob("*.py"))
