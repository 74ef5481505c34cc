"""zoo traverse / zoo interpolate: grid sizes, rows by KL, sweeps of one coordinate, slerp ends, named errors."""
from __future__ import annotations

import pytest
import torch

from tiny_runs import card_text, train_and_reload
from zoo.errors import InputError
from zoo.traversal import choose_dims, decode_mean, interpolate, pick_pairs, slerp, traverse


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("shapes-run")
    text = card_text(latent="[4]", encoder="{name: mlp, hidden: [32]}",
                     decoder="{name: mlp, hidden: [32], likelihood: bernoulli}", prior="{name: standard-normal}",
                     data="zoo:shapes", shape="[1, 32, 32]", steps=40)
    _, model = train_and_reload(text, out)
    return out, model


@pytest.fixture(scope="module")
def data():
    from zoo.data import load_tensors

    return load_tensors("zoo:shapes", "test")[:200]


def test_traverse_rows_sweep_one_coordinate_sorted_by_kl(run, data):
    _, model = run
    t = traverse(model, data, dims="all", steps=5, span=2.0, reference=3)
    assert t.images.shape == (4 * 5, 1, 32, 32) and sorted(t.dims) == [0, 1, 2, 3]
    assert t.kl == sorted(t.kl, reverse=True) and all(k >= 0 for k in t.kl)
    ref = model.encode(data[3:4]).mean[0].detach()
    for r, d in enumerate(t.dims):                    # row r decodes ref + offset * e_d
        z = ref.repeat(5, 1)
        z[:, d] += torch.linspace(-2, 2, 5)
        assert torch.allclose(t.images[r * 5:(r + 1) * 5], decode_mean(model, z), atol=1e-6)
    zero = traverse(model, data, dims=[t.dims[0]], steps=3, reference="zero")
    assert torch.allclose(zero.images[1], decode_mean(model, torch.zeros(1, 4))[0], atol=1e-6)


def test_auto_dims_are_the_active_ones_by_kl():
    kl = torch.tensor([0.1, 2.0, 0.3, 1.0])
    means = torch.zeros(50, 4)
    means[:, 1], means[:, 3] = torch.linspace(-1, 1, 50), torch.linspace(0, 0.5, 50)
    assert choose_dims("auto", kl, means) == [1, 3]
    assert choose_dims("auto", kl, torch.zeros(50, 4)) == [1]            # none active: the top one by KL
    assert choose_dims("0,2", kl, means) == [2, 0]                        # given dims, still sorted by KL
    for bad, match in (("7", r"0\.\.3.*\[7\] out of range"), ("a,b", "comma-separated"), ("1,1", "at most once")):
        with pytest.raises(InputError, match=match):
            choose_dims(bad, kl, means)


def test_interpolation_ends_decode_the_posterior_means(run, data):
    _, model = run
    a, b = pick_pairs(len(data), 3, seed=0)
    images = interpolate(model, data[a], data[b], steps=6).reshape(3, 6, 1, 32, 32)
    ends_a = decode_mean(model, model.encode(data[a]).mean.detach())
    ends_b = decode_mean(model, model.encode(data[b]).mean.detach())
    assert torch.allclose(images[:, 0], ends_a, atol=1e-5) and torch.allclose(images[:, -1], ends_b, atol=1e-5)
    assert not torch.allclose(images[:, 2], ends_a, atol=1e-3)
    u, v = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    path = slerp(u, v, torch.linspace(0, 1, 5))[0]
    assert torch.allclose(path.norm(dim=1), torch.ones(5), atol=1e-6)   # stays on the circle
    assert torch.allclose(path[2], torch.tensor([2 ** -0.5, 2 ** -0.5]), atol=1e-6)
    with pytest.raises(InputError, match="needs 402 images"):
        pick_pairs(200, 201)


def test_cli_writes_grids_of_the_stated_size(run, tmp_path, capsys):
    from PIL import Image

    from zoo.cli import main

    out, _ = run
    png = tmp_path / "grid.png"
    assert main(["traverse", str(out), "--dims", "all", "--steps", "7", "--scale", "1", "--out", str(png)]) == 0
    img = Image.open(png)
    assert img.height == 4 * (32 + 2) + 2 and img.width > 7 * (32 + 2) + 2     # rows x steps, plus the KL labels
    assert "rows by KL" in capsys.readouterr().out
    png2 = tmp_path / "interp.png"
    assert main(["interpolate", str(out), "--data", "zoo:shapes", "--pairs", "3", "--steps", "5", "--scale", "1",
                 "--out", str(png2)]) == 0
    assert Image.open(png2).size == (5 * 34 + 2, 3 * 34 + 2)
    assert main(["traverse", str(out), "--dims", "9", "--out", str(png)]) == 2
    assert "--dims '9': latent dimensions are 0..3" in capsys.readouterr().err
    assert main(["traverse", str(out), "--out", str(tmp_path)]) == 2                # a folder, not a PNG
