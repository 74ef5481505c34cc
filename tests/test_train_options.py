"""The Python API takes the CLI's option names (issue 20): ``zoo.train(..., quiet=True)`` as ``--quiet``,
``data_shape=`` as ``--data-shape``; a TrainResult prints a short summary."""
from __future__ import annotations

import pytest

import zoo
from zoo.errors import ShapeError

FAST = {"steps": 2, "batch_size": 16, "eval_iwae_k": 2, "eval_every": 0, "checkpoint_every": 1000}


def test_train_quiet_and_a_short_summary(tmp_path, capsys):
    result = zoo.train("vae-digits", out=tmp_path / "run", quiet=True, **FAST)
    err = capsys.readouterr().err
    assert "it/s" not in err and "step/s" not in err        # no progress bar
    text = repr(result)
    assert text.startswith("TrainResult(model='vae-digits', folder=") and "steps=2" in text
    assert f"elbo={result.report['elbo']:.2f}" in text and "zoo:digits [test]" in text
    assert len(text) < 300 and "Sequential" not in text


def test_train_at_another_image_size(tmp_path):
    """vae-digits (8x8) on the 28x28 MNIST sample: the card's architecture is rebuilt for the data's shape."""
    with pytest.raises(ShapeError, match=r"expects \[1, 8, 8\]; .*--data-shape 1,28,28.*extends: vae-digits"):
        zoo.train("vae-digits", data="zoo:mnist-5k", out=tmp_path / "no", quiet=True, **FAST)
    result = zoo.train("vae-digits", data="zoo:mnist-5k", data_shape=(1, 28, 28), out=tmp_path / "run", quiet=True,
                       **FAST)
    assert result.model.data_shape == (1, 28, 28)
    assert zoo.load(tmp_path / "run").data_shape == (1, 28, 28)
    command = zoo.read_card(tmp_path / "run" / "README.md").zoo["results"]["command"]
    assert "--data zoo:mnist-5k --data-shape 1,28,28 --out" in command      # the command that reproduces it


def test_a_shape_the_architecture_cannot_take_points_at_extends(tmp_path):
    with pytest.raises(ShapeError, match=r"'vqvae-mnist': its architecture does not adapt to images of shape "
                                         r"\[1, 8, 8\].*extends: vqvae-mnist"):
        zoo.train("vqvae-mnist", data="zoo:digits", data_shape="1,8,8", out=tmp_path / "run", quiet=True, **FAST)
