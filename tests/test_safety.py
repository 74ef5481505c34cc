"""Nothing lost, nothing silent: run-folder safety, resume and NaN, plugin isolation, input validation,
files and exit codes.  Each data-loss case checks that the user's bytes are unchanged afterwards."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
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
from zoo.errors import CardError, InputError, TrainingError, WeightsError

from make_cards import make_card, register_card
from test_training import SMALL, assert_identical, small_card, weights

QUICK = dict(progress=False)


def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file below ``folder``: the user's bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def user_folder(tmp_path) -> Path:
    """A folder of the user's own files, named like a run's."""
    folder = tmp_path / "mine"
    (folder / "samples").mkdir(parents=True)
    (folder / "README.md").write_text("# my notes\n")
    (folder / "config.json").write_text('{"lr": "mine"}\n')
    (folder / "metrics.csv").write_text("a,b\n1,2\n")
    (folder / "samples" / "figure.png").write_bytes(b"\x89PNG not really")
    return folder


# -- data loss ----------------------------------------------------------------------------------------
def test_a_non_run_folder_with_files_is_refused_and_left_as_it_was(user_folder, capsys):
    before = snapshot(user_folder)
    with pytest.raises(TrainingError, match="not empty and is not a latent-zoo run folder.*--overwrite"):
        zoo.train(small_card(), out=user_folder, **QUICK)
    with pytest.raises(TrainingError, match="would replace README.md, config.json, metrics.csv, samples, which "
                                            "latent-zoo did not write"):
        zoo.train(small_card(), out=user_folder, overwrite=True, **QUICK)
    assert main(["train", "vae-digits", "--out", str(user_folder), "--steps", "2", "--quiet"]) == 1
    assert "not a latent-zoo run folder" in capsys.readouterr().err
    assert snapshot(user_folder) == before


def test_overwrite_writes_beside_unrelated_files_and_never_deletes_them(tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    before = snapshot(folder)
    zoo.train(small_card(train={"steps": 3}), out=folder, overwrite=True, **QUICK)
    assert (folder / "model.safetensors").is_file() and (folder / ".zoo-run").is_file()
    zoo.train(small_card(train={"steps": 3}), out=folder, overwrite=True, **QUICK)   # replacing our own run is fine
    assert {k: v for k, v in snapshot(folder).items() if k in before} == before


HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from zoo.store.run_lock import RunLock
    lock = RunLock(sys.argv[1]).acquire()
    print("LOCKED", flush=True)
    time.sleep(60)
""")


def test_a_second_run_into_the_same_folder_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "LOCKED"
        with pytest.raises(TrainingError, match=rf"being written by another latent-zoo process \(pid {holder.pid}\)"):
            zoo.train(small_card(), out=out, **QUICK)
        assert not (out / "metrics.csv").exists() and not (out / "checkpoints").exists()
    finally:
        holder.kill()
        holder.wait()
    zoo.train(small_card(train={"steps": 2}), out=out, **QUICK)   # the OS released the dead holder's lock


INTERRUPTED = textwrap.dedent('''
    import os, signal, sys, time
    sys.path.insert(0, sys.argv[2])
    from test_training import small_card
    from zoo.cli import main
    import zoo.training.loop as loop
    after = loop.TrainLoop._after_step
    def slow_after_step(self):
        after(self)
        if self.step == 12:
            print("AT12", flush=True)
            time.sleep(1.5)   # the parent sends SIGINT meanwhile
    loop.TrainLoop._after_step = slow_after_step
    import zoo
    card = small_card(train={"steps": 30, "batch_size": 64, "lr": 0.003, "seed": 0, "eval_iwae_k": 2, "log_every": 5,
                             "eval_every": 0, "sample_every": 0, "num_samples": 4, "eval_points": 100,
                             "checkpoint_every": 100})
    try:
        zoo.train(card, out=sys.argv[1], progress=False)
    except loop.TrainingInterrupted as e:
        print("INTERRUPTED", e, flush=True)
        sys.exit(130)
''')


@pytest.mark.integration
def test_ctrl_c_writes_a_checkpoint_of_the_current_step_and_resume_continues_exactly(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(INTERRUPTED)
    out = tmp_path / "run"
    child = subprocess.Popen([sys.executable, str(script), str(out), str(Path(__file__).parent)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert child.stdout.readline().strip() == "AT12"
    child.send_signal(signal.SIGINT)
    stdout, stderr = child.communicate(timeout=120)
    assert child.returncode == 130, stderr
    assert "SIGINT at step 12 of 30: checkpoint written to" in stdout and "--resume` continues exactly" in stdout
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-00000012"]
    card = small_card(train={**SMALL["train"], "checkpoint_every": 100})
    resumed = zoo.train(card, out=out, resume=True, **QUICK)
    straight = zoo.train(card, out=tmp_path / "straight", **QUICK)
    assert_identical(weights(out), weights(tmp_path / "straight"))
    assert resumed.report["elbo"] == straight.report["elbo"]


def test_a_full_disk_names_the_file_and_the_last_complete_checkpoint(tmp_path, monkeypatch):
    import zoo.training.state as state

    write, calls = state._write_bytes, {"n": 0}

    def fill_up(path, data):
        if ".step-00000020" in str(path) and path.name == "model.safetensors":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        write(path, data)

    monkeypatch.setattr(state, "_write_bytes", fill_up)
    out = tmp_path / "run"
    with pytest.raises(TrainingError) as err:
        zoo.train(small_card(train={"checkpoint_every": 10}), out=out, **QUICK)
    message = str(err.value)
    assert "could not write the checkpoint of step 20" in message and "No space left on device" in message
    assert ".step-00000020.partial/model.safetensors" in message and "step-00000010 (step 10)" in message
    monkeypatch.setattr(state, "_write_bytes", write)
    resumed = zoo.train(small_card(train={"checkpoint_every": 10}), out=out, resume=True, **QUICK)
    assert resumed.report["elbo"] < 0          # the older checkpoint survived and resumes


def test_a_failing_final_evaluation_still_leaves_weights_config_and_card(tmp_path, monkeypatch):
    import zoo.diagnostics

    def broken(*args, **kwargs):
        raise KeyError("likelihood.discrete")

    monkeypatch.setattr(zoo.diagnostics, "diagnose", broken)
    out = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"final evaluation failed: KeyError.*not measured"):
        zoo.train(small_card(train={"steps": 5}), out=out, **QUICK)
    for name in ("model.safetensors", "config.json", "README.md"):
        assert (out / name).is_file(), name
    results = json.loads((out / "config.json").read_text())["zoo"]["results"]
    assert results["measured"] is False and "KeyError" in results["evaluation_error"] and "elbo" not in results
    monkeypatch.undo()
    assert zoo.load(out).elbo(torch.rand(2, 1, 8, 8)).elbo.isfinite().all()


# -- resume and NaN -----------------------------------------------------------------------------------
def _lr_rows(folder: Path) -> list[tuple[int, float]]:
    rows = (folder / "metrics.csv").read_text().splitlines()[1:]
    return [(int(s), float(v)) for s, m, v, _ in (r.split(",") for r in rows) if m == "train/lr"]


def test_resume_applies_a_changed_lr_exactly_and_records_it(tmp_path):
    out = tmp_path / "run"
    zoo.train(small_card(train={"checkpoint_every": 10}), out=out, steps=10, **QUICK)
    zoo.train(small_card(train={"checkpoint_every": 10}), out=out, resume=True, steps=20, lr=0.01, **QUICK)
    rows = dict(_lr_rows(out))
    assert rows[10] == pytest.approx(0.003) and rows[15] == pytest.approx(0.01) and rows[20] == pytest.approx(0.01)
    # the card records the change for the segment it applied to, not as the recipe of the whole run
    config = json.loads((out / "config.json").read_text())["zoo"]
    assert config["train"]["lr"] == 0.003 and config["train"]["steps"] == 10
    assert config["results"]["segments"][1] == {"from_step": 10, "beta": 1.0, "changed": {"lr": 0.01, "steps": 20}}
    assert config["results"]["steps"] == 20
    assert zoo.read_card(out / "README.md").zoo["results"]["segments"] == config["results"]["segments"]


def test_resume_refuses_what_it_cannot_apply(tmp_path):
    out = tmp_path / "run"
    zoo.train(small_card(train={"checkpoint_every": 10}), out=out, steps=10, **QUICK)
    with pytest.raises(TrainingError, match=r"--resume cannot change --optimizer 'adamw' \(the run used 'adam'\)"):
        zoo.train(small_card(), out=out, resume=True, optimizer="adamw", **QUICK)
    with pytest.raises(TrainingError, match="--resume and --overwrite contradict"):
        zoo.train(small_card(), out=out, resume=True, overwrite=True, **QUICK)


def test_weights_that_go_nan_are_never_checkpointed_as_good(tmp_path, monkeypatch):
    """The loss of step 10 is finite but its update makes the weights NaN: step 10 must not be saved."""
    import zoo.training.loop as loop

    step = loop.TrainLoop._optimiser_step

    def poison(self, xs):
        step(self, xs)
        if self.step == 10:
            with torch.no_grad():
                next(self.model.parameters()).fill_(float("nan"))

    monkeypatch.setattr(loop.TrainLoop, "_optimiser_step", poison)
    out = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"stopped at step 10: the weights after this step are not finite.*"
                                            r"step-00000005 \(step 5\)"):
        zoo.train(small_card(train={"checkpoint_every": 5, "log_every": 5}), out=out, **QUICK)
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-00000005"]
    monkeypatch.undo()
    zoo.train(small_card(train={"checkpoint_every": 5}), out=out, resume=True, steps=12, **QUICK)  # it resumes


def test_nan_weights_are_refused_on_load(tmp_path):
    from safetensors.torch import load_file, save_file

    out = tmp_path / "run"
    zoo.train(small_card(train={"steps": 3}), out=out, **QUICK)
    state = load_file(str(out / "model.safetensors"))
    state = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in state.items()}
    save_file(state, str(out / "model.safetensors"))
    with pytest.raises(WeightsError, match=r"NaN or infinite values in \d+ of \d+ parameters"):
        zoo.load(out)


# -- plugin isolation: named wherever the user is -------------------------------------------------------
@pytest.fixture
def broken_plugin(tmp_path, monkeypatch):
    (tmp_path / "zoo_exits_plugin.py").write_text("import sys\nsys.exit('configuration missing')\n")
    info = tmp_path / "zoo_exits_plugin-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: zoo-exits-plugin\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text("[zoo]\nexits = zoo_exits_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("zoo_exits_plugin", None)


def test_a_plugin_exiting_at_import_is_named_in_every_command(broken_plugin, fresh_registry, capsys):
    from zoo.registry import reset_registry

    reset_registry()
    assert main(["list", "vae-*"]) == 0
    out, err = capsys.readouterr()
    assert "vae-mnist" in out
    assert "zoo: warning: plugin exits from zoo-exits-plugin failed: SystemExit: configuration missing; see `zoo plugins`" in err
    reset_registry()
    with pytest.warns(zoo.errors.PluginWarning, match="zoo-exits-plugin"):
        zoo.list_models()
    with pytest.raises(zoo.errors.UnknownModelError, match="zoo-exits-plugin"):
        zoo.get_card("vae-from-the-broken-plugin")


def test_a_run_whose_component_is_not_installed_names_the_distribution(tmp_path, fresh_registry):
    out = tmp_path / "run"
    zoo.train(small_card(train={"steps": 2}), out=out, **QUICK)
    config = json.loads((out / "config.json").read_text())
    assert config["plugins"]["prior"] == {"name": "standard-normal", "distribution": "latent-zoo",
                                          "version": zoo.__version__, "module": "zoo_plugins.builtin"}
    config["zoo"]["prior"] = {"name": "student-t"}
    config["plugins"]["prior"] = {"name": "student-t", "distribution": "zoo-student", "version": "0.2.0"}
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(CardError, match=r"unknown prior 'student-t'.*distribution zoo-student==0.2.0: "
                                        r"pip install zoo-student==0.2.0"):
        zoo.load(out)


# -- input validation ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model():
    from zoo.assemble import build_model

    return build_model(make_card()).eval()


def test_bad_pixels_are_refused_by_name(model):
    x = torch.rand(2, 1, 8, 8)
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(InputError, match="NaN or infinite pixels"):
        model.elbo(bad)
    with pytest.raises(InputError, match=r"must lie in \[0, 1\].*divide"):
        model.elbo(x * 255)
    with pytest.raises(InputError, match=r"must lie in \[0, 1\]"):
        zoo.diagnose(model, -x)
    with pytest.raises(InputError, match="torch.Tensor or numpy.ndarray, got list"):
        model.elbo(x.tolist())
    torch.manual_seed(1)
    from_numpy = model.elbo(x.numpy()).elbo
    torch.manual_seed(1)
    assert torch.allclose(from_numpy, model.elbo(x).elbo)                       # numpy is accepted
    assert torch.equal(model.prepare(np.zeros((1, 1, 8, 8), np.uint8)), model.prepare(torch.zeros(1, 1, 8, 8)))


def test_bad_training_options_are_named(tmp_path, capsys):
    with pytest.raises(CardError, match=r"--beta.*>= 0, got -2"):
        zoo.train(small_card(), out=tmp_path / "a", beta=-2.0, **QUICK)
    if not torch.cuda.is_available():
        with pytest.raises(TrainingError, match="--device 'cuda': CUDA is not available"):
            zoo.train(small_card(), out=tmp_path / "b", device="cuda", **QUICK)
    with pytest.raises(TrainingError, match="--device 'tpu9' is not a device name"):
        zoo.train(small_card(), out=tmp_path / "c", device="tpu9", **QUICK)
    assert main(["train", "vae-digits", "--out", str(tmp_path / "d"), "--lr", "-1", "--quiet"]) == 2
    assert "--lr" in capsys.readouterr().err
    assert not any((tmp_path / n).exists() for n in "abcd")


@pytest.mark.parametrize("hidden, message", [([-5], r"\[-5\].*negative dimension"), ([512, "x"], r"\[512, 'x'\]"),
                                             ([2 ** 20, 2 ** 20], r"would hold \d+\.\d GiB of parameters")])
def test_bad_card_arguments_name_the_field_and_value(hidden, message):
    from zoo.assemble import build_model

    with pytest.raises(CardError, match=rf"field 'zoo.encoder'.*{message}"):
        build_model(make_card(encoder={"name": "mlp", "hidden": hidden}))


def test_bad_cli_numbers_and_paths(tmp_path, capsys):
    run = tmp_path / "run"
    zoo.train(small_card(train={"steps": 2}), out=run, **QUICK)
    for argv, needle in ((["sample", str(run), "--n", "0"], "--n: must be >= 1"),
                         (["sample", str(run), "--n", "-5"], "--n: must be >= 1"),
                         (["sample", str(run), "--scale", "0"], "--scale: must be >= 1"),
                         (["diagnose", str(run), "--max-points", "0"], "--max-points: must be >= 1"),
                         (["diagnose", str(run), "--k", "-1"], "--k: must be >= 0")):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2 and needle in capsys.readouterr().err, argv
    assert main(["sample", str(run), "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    typo = str(tmp_path / "runs" / "c-goood")
    (tmp_path / "runs").mkdir()
    assert main(["sample", typo]) == 1
    assert "no such run folder" in capsys.readouterr().err
    with pytest.raises(WeightsError, match="no such run folder"):
        zoo.load("runs/c-goood") if Path("runs").is_dir() else zoo.load("./runs/c-goood")


def test_a_corrupt_image_in_a_stream_is_named_with_its_file(tmp_path):
    from PIL import Image

    from zoo.data import iterate_batches, load_dataset

    folder = tmp_path / "images" / "train" / "0"
    folder.mkdir(parents=True)
    for i in range(4):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(folder / f"{i}.png")
    (folder / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    stream = load_dataset(str(tmp_path / "images"), "train", streaming=True)
    with pytest.raises(zoo.errors.DataError, match=r"cannot decode .*2\.png"):
        list(iterate_batches(stream, 2, shape=(1, 8, 8)))


# -- files and exit codes ------------------------------------------------------------------------------
def test_written_files_respect_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        zoo.train(small_card(train={"steps": 2}), out=tmp_path / "run", **QUICK)
    finally:
        os.umask(old)
    for name in ("model.safetensors", "config.json", "README.md"):
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == 0o644, name


def test_a_stale_partial_download_is_never_used(local_hub, tmp_path):
    """huggingface_hub downloads into a process-unique temporary file: a download cut by a killed process
    starts again (no cross-process resume; README says so) and its leftover is never taken as the file."""
    from huggingface_hub import constants

    from zoo.hub import download_file, push_folder

    src = tmp_path / "src"
    src.mkdir()
    payload = os.urandom(200_000)
    (src / "weights.bin").write_bytes(payload)
    push_folder(src, "someone/blob")
    sha = hashlib.sha256(payload).hexdigest()
    blobs = Path(constants.HF_HUB_CACHE) / "models--someone--blob" / "blobs"
    blobs.mkdir(parents=True)
    (blobs / f"{sha}.incomplete").write_bytes(payload[:80_000])     # what a kill -9 mid-download leaves
    path, _ = download_file("someone/blob", "weights.bin", sha256=sha)
    assert path.read_bytes() == payload
    gets = [h.get("Range") for m, p, h in local_hub.requests if m == "GET" and p.endswith("/weights.bin")]
    assert gets == [None]                                              # it started again from byte 0


def test_a_closed_pipe_exits_quietly(tmp_path):
    proc = subprocess.run(f"{sys.executable} -m zoo.cli info vae-mnist --json | head -c 20",
                          shell=True, capture_output=True, text=True)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr
