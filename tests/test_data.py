"""Tests of zoo.data: built-in sources, local sources, Hub errors, tensors, batches."""
from __future__ import annotations

import dataclasses
import hashlib
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from zoo import data as zd
from zoo.data import DataError
from zoo.data.splits import _fallback_indices
from zoo.errors import ZooError

datasets = pytest.importorskip("datasets")
Image = pytest.importorskip("PIL.Image")

BUILTINS = {"zoo:mnist-5k": (5000, 4500, 500, (1, 28, 28)),
            "zoo:digits": (1797, 1497, 300, (1, 8, 8))}


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Every test gets its own ZOO_CACHE and HF datasets cache, and an empty in-process memo."""
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "zoo-cache"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    zd.clear_memo()
    yield
    zd.clear_memo()


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One ZOO_CACHE reused by the read-only built-in tests, so each source is built once."""
    return tmp_path_factory.mktemp("shared-zoo-cache")


@pytest.fixture
def use_shared(shared_cache, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE", str(shared_cache))
    return shared_cache


def _png_folder(root: Path, modes=("RGB", "RGB"), size=(5, 6), per_class=3) -> dict:
    """root/class_x/*.png with known pixels; returns {path: array}."""
    rng = np.random.default_rng(1)
    written = {}
    for c, mode in zip(("class_a", "class_b"), modes):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            shape = size if mode == "L" else (*size, len(mode))
            a = rng.integers(0, 256, shape, dtype=np.uint8)
            p = root / c / f"{i}.png"
            Image.fromarray(a, mode).save(p)
            written[p] = a
    return written


# ---------------------------------------------------------------------------- built-ins


@pytest.mark.parametrize("spec", list(BUILTINS))
def test_builtin_sizes_shapes_labels(spec, use_shared):
    total, n_train, n_test, shape = BUILTINS[spec]
    tr, te = zd.load_dataset(spec, "train"), zd.load_dataset(spec, "test")
    assert (len(tr), len(te)) == (n_train, n_test)
    assert isinstance(tr.features["image"], datasets.Image)
    assert isinstance(tr.features["label"], datasets.ClassLabel)
    assert tr.features["label"].num_classes == 10
    assert tr[0]["image"].mode == "L" and tr[0]["image"].size == shape[:0:-1]
    for ds, n in ((tr, n_train), (te, n_test)):
        x = zd.to_tensor(ds)
        assert x.dtype == torch.uint8 and tuple(x.shape) == (n, *shape)
        assert int(x.max()) == 255 and int(x.min()) == 0
        labels = np.asarray(ds["label"][:])
        assert labels.min() == 0 and labels.max() == 9 and len(np.unique(labels)) == 10
    # disjoint, together the whole source, stratified
    i_tr, i_te = set(tr["index"][:]), set(te["index"][:])
    assert not i_tr & i_te and i_tr | i_te == set(range(total))
    counts = np.bincount(np.asarray(te["label"][:]), minlength=10)
    assert counts.max() - counts.min() <= 2
    d = zd.describe(spec)
    assert d["splits"] == {"train": n_train, "test": n_test} and d["shape"] == shape
    assert d["license"] and d["credit"]


def test_builtin_credits():
    mnist, digits = zd.describe("zoo:mnist-5k"), zd.describe("zoo:digits")
    assert mnist["license"] == "CC BY-SA 3.0"
    assert all(n in mnist["credit"] for n in ("Yann LeCun", "Corinna Cortes", "Burges"))
    assert digits["license"] == "CC BY 4.0" and "UCI" in digits["credit"]
    assert "scikit-learn" in digits["credit"] and "BSD" in digits["credit"]


# the split is fixed: these digests pin it across machines and versions
SPLIT_DIGESTS = {
    "zoo:mnist-5k": "921a058e04da4230",
    "zoo:digits": "824f6484b75b7c9d",
}


def _digest(indices) -> str:
    return hashlib.sha256(np.asarray(indices, dtype=np.int64).tobytes()).hexdigest()[:16]


@pytest.mark.parametrize("spec", list(BUILTINS))
def test_builtin_split_is_fixed(spec, use_shared):
    got = _digest(zd.load_dataset(spec, "test")["index"][:])
    assert got == SPLIT_DIGESTS[spec], f"{spec}: the fixed test split changed ({got})"


def test_builtin_split_deterministic_across_builds(tmp_path, monkeypatch):
    runs = []
    for name in ("a", "b"):
        monkeypatch.setenv("ZOO_CACHE", str(tmp_path / name))
        zd.clear_memo()
        runs.append((zd.load_dataset("zoo:digits", "test")["index"][:], zd.load_tensors("zoo:digits")))
    assert runs[0][0] == runs[1][0]
    assert torch.equal(runs[0][1], runs[1][1])


def test_digits_pixels_scaled_from_sklearn(use_shared):
    from sklearn.datasets import load_digits

    ref = np.round(load_digits().images * 255 / 16).astype(np.uint8)
    ds = zd.load_dataset("zoo:digits", "train")
    x = zd.load_tensors("zoo:digits", "train")
    np.testing.assert_array_equal(x[:, 0].numpy(), ref[np.asarray(ds["index"][:])])
    assert set(np.unique(ref)) <= {round(v * 255 / 16) for v in range(17)}


def test_cache_reused_not_rebuilt(monkeypatch):
    first = zd.load_tensors("zoo:digits", "test")
    root = zd.data_cache_dir() / "digits-v1"
    assert (root / "meta.json").is_file() and not [p for p in root.parent.iterdir()
                                                   if p.name.startswith(".")]

    def boom():
        raise AssertionError("the cache should have been reused")

    import zoo_plugins.data.datasets as embedded

    b = zd.embedded_source("digits")
    monkeypatch.setattr(embedded, "DIGITS", dataclasses.replace(b, reader=boom))
    zd.clear_memo()
    second = zd.load_tensors("zoo:digits", "test")  # the reader now raises: this must come from the cache
    assert second is not first and torch.equal(first, second)
    assert len(zd.load_dataset("zoo:digits", "train")) == 1497  # also from the cache
    # the memo: same arguments give the same object, instantly
    assert zd.load_tensors("zoo:digits", "test") is second


def test_damaged_cache_is_rebuilt():
    zd.load_tensors("zoo:digits", "test")
    root = zd.data_cache_dir() / "digits-v1"
    (root / "meta.json").unlink()
    zd.clear_memo()
    assert tuple(zd.load_tensors("zoo:digits", "test").shape) == (300, 1, 8, 8)
    assert (root / "meta.json").is_file()


def test_shared_default_cache(monkeypatch):
    monkeypatch.delenv("ZOO_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    root = zd.data_cache_dir()
    assert root == Path.home() / ".cache" / "latent-zoo" / "data"
    x = zd.load_tensors("zoo:digits", "train")
    assert tuple(x.shape) == (1497, 1, 8, 8)
    assert (root / "digits-v1" / "meta.json").is_file()
    assert zd.describe("zoo:digits")["cache"] == str(root / "digits-v1")


def test_builtin_streaming_batches_match_tensor(use_shared):
    stream = zd.load_dataset("zoo:digits", "test", streaming=True)
    assert isinstance(stream, datasets.IterableDataset)
    batches = list(zd.iterate_batches(stream, 64))
    assert [len(b) for b in batches] == [64] * 4 + [44]
    assert torch.equal(torch.cat(batches), zd.load_tensors("zoo:digits", "test"))
    g = torch.Generator().manual_seed(3)
    shuffled = torch.cat(list(zd.iterate_batches(stream, 64, shuffle=True, generator=g)))
    ref = zd.load_tensors("zoo:digits", "test").flatten(1)
    assert sorted(map(tuple, shuffled.flatten(1).tolist())) == sorted(map(tuple, ref.tolist()))


# ---------------------------------------------------------------------------- spec errors


def test_errors_are_zoo_errors():
    assert issubclass(DataError, ZooError)


@pytest.mark.parametrize("spec", ["zoo:nope", "zoo:"])
def test_unknown_builtin(spec):
    with pytest.raises(DataError, match="zoo:mnist-5k"):
        zd.load_dataset(spec)


def test_unknown_split():
    with pytest.raises(DataError, match="validation"):
        zd.load_dataset("zoo:digits", "validation")


@pytest.mark.parametrize("rel", ["missing.parquet", "no/such/folder", "./nope"])
def test_missing_path(tmp_path, rel):
    spec = str(tmp_path / rel) if not rel.startswith(".") else rel
    with pytest.raises(DataError) as e:
        zd.load_dataset(spec)
    assert spec in str(e.value) and "no such file" in str(e.value)
    with pytest.raises(DataError, match="no such file"):
        zd.load_tensors(spec)


def test_hub_offline_names_the_id(tmp_path, monkeypatch):
    import huggingface_hub.constants as hub_constants

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    # the libraries read these variables at import: set what they computed, too
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True, raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_CACHE", str(tmp_path / "hf-home" / "hub"),
                        raising=False)
    with pytest.raises(DataError) as e:
        zd.load_dataset("ylecun/no-such-dataset-for-zoo-tests")
    msg = str(e.value)
    assert "ylecun/no-such-dataset-for-zoo-tests" in msg and "offline" in msg
    assert "HF_DATASETS_OFFLINE" in msg
    # describe() of a well-known id still answers from latent-zoo's notes
    d = zd.describe("ylecun/mnist")
    assert d["splits"] == {"train": 60000, "test": 10000} and d["license"] == "CC BY-SA 3.0"


def test_hub_code_path_with_a_stand_in(monkeypatch, small_digits, caplog):
    """No network here: stand in for datasets.load_dataset and check what latent-zoo asks of it."""
    ds, x = small_digits
    ds = ds.rename_column("image", "img").rename_column("label", "digit")  # found by type
    calls = []

    def fake_load_dataset(path, split=None, revision=None, streaming=False, **kw):
        calls.append((path, split, revision, streaming))
        if split != "train":
            raise ValueError(f'Unknown split "{split}". Should be one of [\'train\'].')
        return ds.to_iterable_dataset() if streaming else ds

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    got = zd.load_dataset("someone/digits", revision="abc123")
    assert calls[-1] == ("someone/digits", "train", "abc123", False)
    assert torch.equal(zd.to_tensor(got), x)
    assert torch.equal(zd.load_tensors("someone/digits"), x)
    with caplog.at_level(logging.WARNING, logger="zoo.data"):
        test = zd.load_dataset("someone/digits", "test")
    assert len(test) == 2 and "no 'test' split" in caplog.text
    with pytest.raises(DataError, match="'validation'"):
        zd.load_dataset("someone/digits", "validation")
    stream = zd.load_dataset("someone/digits", streaming=True)
    assert calls[-1][3] is True
    assert torch.equal(torch.cat(list(zd.iterate_batches(stream, 8))), x)
    with pytest.raises(DataError, match="stream"):
        zd.load_dataset("someone/digits", "test", streaming=True)


# ---------------------------------------------------------------------------- local sources


@pytest.fixture
def small_digits(use_shared):
    """20 rows of zoo:digits as a plain in-memory Dataset, and their tensor."""
    ds = zd.load_dataset("zoo:digits", "train").select(range(20))
    ds = datasets.Dataset.from_dict(ds.to_dict(), features=ds.features)
    return ds, zd.to_tensor(ds)


def train_rows(n: int) -> np.ndarray:
    """The rows a local source without a 'test' split trains on (the other 90%, in order)."""
    return np.sort(_fallback_indices(n)[0])


def test_local_parquet_file(tmp_path, small_digits, caplog):
    ds, x = small_digits
    path = tmp_path / "digits.parquet"
    ds.to_parquet(str(path))
    loaded = zd.load_dataset(str(path))
    rows = train_rows(20)  # no 'test' split: the fixed held-out 10% is not trained on
    assert len(loaded) == 18
    assert torch.equal(zd.to_tensor(loaded), x[rows])
    assert torch.equal(zd.load_tensors(str(path)), x[rows])
    with caplog.at_level(logging.WARNING, logger="zoo.data"):
        test = zd.load_dataset(str(path), "test")
    assert len(test) == 2 and "no 'test' split" in caplog.text
    again = zd.load_dataset(str(path), "test")
    assert test["index"][:] == again["index"][:]
    assert set(test["index"][:]) <= set(ds["index"][:])
    assert not set(test["index"][:]) & set(loaded["index"][:])
    d = zd.describe(str(path))
    assert d["splits"] == {"train": 20} and d["shape"] == (1, 8, 8) and "test" in d["notes"]


def test_local_parquet_folder_with_splits(tmp_path, small_digits):
    ds, x = small_digits
    folder = tmp_path / "pq"
    folder.mkdir()
    ds.select(range(15)).to_parquet(str(folder / "train-00000-of-00001.parquet"))
    ds.select(range(15, 20)).to_parquet(str(folder / "test-00000-of-00001.parquet"))
    assert torch.equal(zd.load_tensors(str(folder), "test"), x[15:])
    assert len(zd.load_dataset(str(folder), "train")) == 15


def test_local_imagefolder(tmp_path):
    written = _png_folder(tmp_path / "imgs")
    ds = zd.load_dataset(str(tmp_path / "imgs"))
    assert len(ds) == 5 and ds.features["label"].names == ["class_a", "class_b"]
    x = zd.to_tensor(ds)
    assert x.dtype == torch.uint8 and tuple(x.shape) == (5, 3, 5, 6)
    test = zd.to_tensor(zd.load_dataset(str(tmp_path / "imgs"), "test"))
    expected = {a.transpose(2, 0, 1).tobytes() for a in written.values()}
    assert {row.numpy().tobytes() for row in torch.cat([x, test])} == expected
    assert zd.describe(str(tmp_path / "imgs"))["shape"] == (3, 5, 6)


def test_local_save_to_disk(tmp_path, small_digits):
    ds, x = small_digits
    dd = datasets.DatasetDict({"train": ds.select(range(12)), "test": ds.select(range(12, 20))})
    dd.save_to_disk(str(tmp_path / "saved"))
    test = zd.load_dataset(str(tmp_path / "saved"), "test")
    assert len(test) == 8 and torch.equal(zd.to_tensor(test), x[12:])
    # a single saved Dataset counts as its 'train' split
    ds.save_to_disk(str(tmp_path / "single"))
    assert len(zd.load_dataset(str(tmp_path / "single"))) == 18  # 2 held out as 'test'


def test_local_wrong_kind_of_file(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("hello")
    with pytest.raises(DataError, match="notes.txt"):
        zd.load_dataset(str(p))


def test_image_key(tmp_path, small_digits):
    ds, x = small_digits
    ds = ds.rename_column("image", "pixels")
    ds.save_to_disk(str(tmp_path / "renamed"))
    with pytest.raises(DataError, match="'photo'"):
        zd.load_dataset(str(tmp_path / "renamed"), image_key="photo")
    assert torch.equal(zd.load_tensors(str(tmp_path / "renamed"), image_key="pixels"), x[train_rows(20)])
    nolabel = datasets.Dataset.from_dict({"label": [1, 2]})
    with pytest.raises(DataError, match="no image column"):
        zd.to_tensor(nolabel)


# ---------------------------------------------------------------------------- shapes and modes


def test_shape_mismatch_names_both_shapes(tmp_path, use_shared):
    with pytest.raises(DataError) as e:
        zd.load_tensors("zoo:digits", shape=(1, 28, 28))
    assert "zoo:digits" in str(e.value) and "1x8x8" in str(e.value) and "1x28x28" in str(e.value)
    with pytest.raises(DataError) as e:
        zd.to_tensor(zd.load_dataset("zoo:mnist-5k", "test"), shape=(3, 32, 32))
    assert "zoo:mnist-5k" in str(e.value) and "1x28x28" in str(e.value) and "3x32x32" in str(e.value)
    assert tuple(zd.load_tensors("zoo:digits", shape=(1, 8, 8)).shape) == (1497, 1, 8, 8)


def test_channels_need_convert(tmp_path):
    _png_folder(tmp_path / "imgs")
    spec = str(tmp_path / "imgs")
    ds = zd.load_dataset(spec)
    with pytest.raises(DataError) as e:
        zd.to_tensor(ds, shape=(1, 5, 6))
    assert spec in str(e.value) and "3x5x6" in str(e.value) and "1x5x6" in str(e.value)
    assert "convert=True" in str(e.value)
    gray = zd.to_tensor(ds, shape=(1, 5, 6), convert=True)
    assert tuple(gray.shape) == (5, 1, 5, 6)
    assert tuple(zd.load_tensors(spec, shape=(1, 5, 6), convert=True).shape) == (5, 1, 5, 6)


def test_mixed_modes_and_alpha(tmp_path):
    _png_folder(tmp_path / "mixed", modes=("L", "RGB"))
    ds = zd.load_dataset(str(tmp_path / "mixed"))
    with pytest.raises(DataError, match="mode"):
        zd.to_tensor(ds)
    first = 1 if ds[0]["image"].mode == "L" else 3
    assert tuple(zd.to_tensor(ds, convert=True).shape) == (5, first, 5, 6)  # the first image's mode
    assert tuple(zd.to_tensor(ds, convert=True, shape=(3, 5, 6)).shape) == (5, 3, 5, 6)
    _png_folder(tmp_path / "rgba", modes=("RGBA", "RGBA"))
    rgba = zd.load_dataset(str(tmp_path / "rgba"))
    assert tuple(zd.to_tensor(rgba).shape) == (5, 4, 5, 6)  # alpha kept unless asked
    rgb = zd.to_tensor(rgba, shape=(3, 5, 6), convert=True)
    np.testing.assert_array_equal(rgb.numpy(), zd.to_tensor(rgba)[:, :3].numpy())


def test_image_sizes_differ(tmp_path):
    _png_folder(tmp_path / "sizes")
    Image.fromarray(np.zeros((7, 7, 3), np.uint8)).save(tmp_path / "sizes" / "class_a" / "big.png")
    with pytest.raises(DataError, match="never resized"):
        zd.to_tensor(zd.load_dataset(str(tmp_path / "sizes")))


def test_to_tensor_converts_the_whole_split_at_once(use_shared):
    ds = zd.load_dataset("zoo:mnist-5k", "train")
    x = zd.to_tensor(ds)
    assert x.dtype == torch.uint8 and tuple(x.shape) == (4500, 1, 28, 28) and x.is_contiguous()
    assert torch.equal(x[:10], zd.to_tensor(ds.select(range(10))))


# ---------------------------------------------------------------------------- batches


def test_batches_cover_every_row_once():
    x = torch.arange(103).view(103, 1)
    g = torch.Generator().manual_seed(0)
    batches = list(zd.iterate_batches(x, 10, shuffle=True, generator=g))
    assert [len(b) for b in batches] == [10] * 10 + [3]
    seen = torch.cat(batches).flatten()
    assert sorted(seen.tolist()) == list(range(103)) and seen.tolist() != list(range(103))
    # a second epoch from the same generator is another order; each covers every row once
    epoch2 = torch.cat(list(zd.iterate_batches(x, 10, shuffle=True, generator=g))).flatten()
    assert sorted(epoch2.tolist()) == list(range(103)) and not torch.equal(epoch2, seen)


def test_batches_reproducible_with_seed():
    x = torch.randint(0, 256, (50, 1, 4, 4), dtype=torch.uint8)

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        return [b.clone() for b in zd.iterate_batches(x, 8, shuffle=True, generator=g)]

    a, b, c = run(7), run(7), run(8)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not all(torch.equal(u, v) for u, v in zip(a, c))


def test_batches_options():
    x = torch.arange(25)
    assert [b.tolist() for b in zd.iterate_batches(x, 10)] == [list(range(10)),
                                                             list(range(10, 20)),
                                                             list(range(20, 25))]
    assert [len(b) for b in zd.iterate_batches(x, 10, drop_last=True)] == [10, 10]
    y = x * 2
    for bx, by in zd.iterate_batches((x, y), 4, shuffle=True,
                                     generator=torch.Generator().manual_seed(1)):
        assert torch.equal(by, bx * 2)
    with pytest.raises(DataError, match="batch_size"):
        list(zd.iterate_batches(x, 0))
    with pytest.raises(DataError, match="different lengths"):
        zd.iterate_batches((x, y[:3]), 4)


def test_batches_from_map_dataset(use_shared):
    ds = zd.load_dataset("zoo:digits", "test")
    batches = list(zd.iterate_batches(ds, 100))
    assert torch.equal(torch.cat(batches), zd.load_tensors("zoo:digits", "test"))
