"""zoo:shapes: deterministic rendering, the factor grid and its ranges, the factor columns beside the images."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from zoo_plugins.data import shapes


def test_rendering_is_deterministic_and_binary():
    f = shapes.factor_grid()[::97]
    a, b = shapes.render(f, 32), shapes.render(f.copy(), 32, chunk=7)
    assert np.array_equal(a, b)                          # the same bytes, whatever the chunking
    assert set(np.unique(a)) == {0, 255}
    assert (a.reshape(len(a), -1) > 0).sum(1).min() > 0  # no empty image
    # the images never touch the border: every shape fits inside the frame at every position
    assert not a[:, 0].any() and not a[:, -1].any() and not a[:, :, 0].any() and not a[:, :, -1].any()
    # the same bytes on every machine and run: a fixed fingerprint (changes only if the renderer changes,
    # and then the cache folder's version must change too)
    digest = hashlib.sha256(shapes.render(shapes.factor_grid()[::53], 32).tobytes()).hexdigest()
    assert digest == "8c86be660d79bf75b04fbf7f9a325361ab47b39e0438a2140e5ed49a4540e66d"


def test_factor_grid_is_full_and_in_range():
    grid = shapes.factor_grid()
    values = shapes.factor_values()
    assert grid.shape == (3 * 6 * 6 * 10 * 10, 5)
    assert len(np.unique(grid, axis=0)) == len(grid)     # every combination once
    for k, name in enumerate(shapes.FACTORS):
        assert np.array_equal(np.unique(grid[:, k]), values[name])
    assert grid[:, 1].min() == 0.5 and grid[:, 1].max() == 1.0
    assert 0 <= grid[:, 2].min() and grid[:, 2].max() < np.pi / 2   # a square's orientation stays identifiable
    assert grid[:, 3:].min() == 0.25 and grid[:, 3:].max() == 0.75


def test_each_factor_changes_the_image():
    base = np.array([[0, 0.75, 0.0, 0.5, 0.5]])
    img = shapes.render(base, 32)
    for k, new in ((0, 1), (0, 2), (1, 0.5), (2, np.pi / 6), (3, 0.3), (4, 0.7)):
        moved = base.copy()
        moved[0, k] = new
        assert not np.array_equal(shapes.render(moved, 32), img), shapes.FACTORS[k]
    up = shapes.render(base, 64)
    assert up.shape == (1, 64, 64) and abs(up.mean() - img.mean()) / img.mean() < 0.2   # the same area fraction


def test_splits_keep_factor_columns_aligned_with_images():
    from zoo.data import describe, load_dataset, load_factors, load_tensors

    info = describe("zoo:shapes")
    assert info["splits"] == {"train": 9720, "test": 1080} and info["factors"] == list(shapes.FACTORS)
    for split in ("train", "test"):
        x = load_tensors("zoo:shapes", split)
        f = load_factors("zoo:shapes", split)
        assert f.names == shapes.FACTORS and len(f) == len(x)
        rows = slice(0, 40)
        assert np.array_equal(shapes.render(f.values[rows], 32), x[rows, 0].numpy())   # row n describes image n
    test = load_factors("zoo:shapes", "test").values
    assert np.bincount(test[:, 0].astype(int)).tolist() == [360, 360, 360]            # stratified by shape
    ds = load_dataset("zoo:shapes", "test")
    assert {"label", "shape", "scale", "orientation", "pos_x", "pos_y"} <= set(ds.features)
    assert ds.features["label"].names == list(shapes.SHAPES)
    assert np.allclose(np.asarray(ds[:5]["scale"]), test[:5, 1])
    assert load_factors("zoo:digits", "test") is None
    with pytest.raises(Exception, match="no split 'valid'"):
        load_factors("zoo:shapes", "valid")
