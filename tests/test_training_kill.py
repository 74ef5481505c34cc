"""kill -9 safety: a training process killed mid-checkpoint (or right after one) loses nothing
but the steps since the last complete checkpoint, and resuming ends bit-identical to a run that
was never interrupted."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from zoo.training.loop import train
from zoo.training.state import CheckpointManager

from make_cards import card_markdown
from test_training import SMALL, assert_identical, small_card

pytestmark = pytest.mark.integration

EXTRA = {"checkpoint_every": 10, "keep_checkpoints": 5, "ema": 0.9}

CHILD = textwrap.dedent('''
    import sys, time
    import zoo.training.state as ts
    from zoo.cards import parse_card
    from zoo.training.loop import train

    out, mode, text = sys.argv[1], sys.argv[2], open(sys.argv[3]).read()
    write, save = ts._write_bytes, ts.CheckpointManager.save

    def half_then_hang(path, data):  # the second checkpoint's weights: half written, then frozen
        if path.name == "model.safetensors" and ".step-00000020." in path.parent.name:
            with open(path, "wb") as f:
                f.write(data[: len(data) // 2])
                f.flush()
            print("MIDWRITE", flush=True)
            time.sleep(600)
        write(path, data)

    def save_then_hang(self, step, *a, **k):  # a kill right after step 10's checkpoint landed
        path = save(self, step, *a, **k)
        if step == 10:
            print("SAVED", flush=True)
            time.sleep(600)
        return path

    if mode == "midwrite":
        ts._write_bytes = half_then_hang
    else:
        ts.CheckpointManager.save = save_then_hang
    train(parse_card(text, name="small"), out=out, progress=False)
''')


def run_and_kill(tmp_path: Path, mode: str, marker: str) -> Path:
    script, card = tmp_path / "child.py", tmp_path / "card.md"
    script.write_text(CHILD)
    card.write_text(card_markdown("small", objective=SMALL["objective"], train={**SMALL["train"], **EXTRA}))
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, str(script), str(out), mode, str(card)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.strip() == marker, proc.stderr.read()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    return out


def test_kill_9_mid_checkpoint_write_leaves_the_previous_checkpoint_loadable(tmp_path):
    out = run_and_kill(tmp_path, "midwrite", "MIDWRITE")
    ckpts = out / "checkpoints"
    partial = ckpts / ".step-00000020.partial"
    assert (partial / "model.safetensors").is_file()  # the half-written file is really there ...
    assert [p.name for p in ckpts.iterdir() if not p.name.startswith(".")] == ["step-00000010"]
    ckpt = CheckpointManager(ckpts).load_latest()  # ... and ignored: step 10 is the latest
    assert ckpt.step == 10 and not ckpt.skipped
    assert not (out / "model.safetensors").exists()
    # resuming ends exactly where an uninterrupted run ends
    train(small_card(train=EXTRA), out=out, resume=True, progress=False)
    assert not partial.exists()
    straight = train(small_card(train=EXTRA), out=tmp_path / "straight", progress=False)
    for name in ("model.safetensors", "model_raw.safetensors"):
        assert_identical(load_file(str(out / name)), load_file(str(straight.folder / name)))


def test_kill_9_after_n_steps_then_resume_matches_2n_steps_bit_for_bit(tmp_path):
    out = run_and_kill(tmp_path, "after", "SAVED")
    assert CheckpointManager(out / "checkpoints").load_latest().step == 10
    torch.manual_seed(999)
    train(small_card(train=EXTRA), out=out, resume=True, progress=False)
    straight = train(small_card(train=EXTRA), out=tmp_path / "straight", progress=False)
    for name in ("model.safetensors", "model_raw.safetensors"):
        assert_identical(load_file(str(out / name)), load_file(str(straight.folder / name)))
    import csv

    keys = [(r["step"], r["metric"]) for r in csv.DictReader((out / "metrics.csv").open())]
    assert len(keys) == len(set(keys))  # rows the killed run logged past step 10 were cut on resume
