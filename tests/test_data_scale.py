"""Datasets at scale: Hub configurations and commits, a persistent decoded cache, per-process decoding of
streams, decoding in worker processes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from zoo.data import DataError, clear_memo, iterate_batches, load_dataset, load_tensors


@pytest.fixture
def images(tmp_path):
    import datasets

    rng = np.random.default_rng(0)
    rows = [rng.integers(0, 255, (8, 8), dtype=np.uint8) for _ in range(40)]
    ds = datasets.Dataset.from_dict({"image": rows}, features=datasets.Features({"image": datasets.Image()}))
    folder = tmp_path / "local"
    datasets.DatasetDict({"train": ds, "test": ds.select(range(8))}).save_to_disk(str(folder))
    return folder, np.stack(rows)


def test_data_config_is_for_hub_datasets_only(images):
    folder, _ = images
    with pytest.raises(DataError, match="--data-config applies to Hub datasets only"):
        load_dataset(str(folder), "train", config="cifar10")


def test_a_hub_datasets_commit_is_read_from_the_cache_offline(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from zoo.data.sources import resolve_commit

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    refs = tmp_path / "datasets--someone--pixels" / "refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text("a" * 40)
    assert resolve_commit("someone/pixels") == "a" * 40
    assert resolve_commit("someone/pixels", "b" * 40) == "b" * 40          # a sha is its own commit
    assert resolve_commit("someone/other") is None                        # offline and unknown: none, not a guess


def test_hub_data_is_decoded_once_per_commit(images, tmp_path, monkeypatch):
    """The decoded uint8 array of a Hub split lands in the data cache under the dataset's commit; a later
    process (memo cleared) reads it instead of decoding again."""
    import zoo.data.sources as sources
    import zoo.data.tensors as tensors

    folder, rows = images
    calls = []
    real = sources.load_dataset

    def hub(spec, split="train", **kwargs):  # the Hub, played by a local copy
        calls.append((spec, split, kwargs.get("config")))
        return real(str(folder), split)

    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "zoo-cache"))
    monkeypatch.setattr(tensors, "load_dataset", hub)
    monkeypatch.setattr(sources, "resolve_commit", lambda spec, revision=None: "c" * 40)
    clear_memo()
    first = load_tensors("someone/pixels", "train", config="small")
    assert torch.equal(first[:, 0], torch.from_numpy(rows)) and calls == [("someone/pixels", "train", "small")]
    cached = list((tmp_path / "zoo-cache").rglob("*.npy"))
    assert len(cached) == 1 and "c" * 40 in str(cached[0]) and "small" in str(cached[0])
    clear_memo()
    again = load_tensors("someone/pixels", "train", config="small")
    assert torch.equal(again, first) and len(calls) == 1                  # read from the cache, not decoded


def test_a_process_decodes_only_its_own_rows_of_a_stream(images, monkeypatch):
    import zoo.data.batches as batches

    folder, rows = images
    decoded = []
    real = batches._open_cell
    monkeypatch.setattr(batches, "_open_cell", lambda cell, name, row: decoded.append(row) or real(cell, name, row))
    stream = load_dataset(str(folder), "train", streaming=True)
    mine = list(iterate_batches(stream, 8, shape=(1, 8, 8), keep=(4, 8), drop_last=True))
    assert len(mine) == 5 and all(b.shape == (4, 1, 8, 8) for b in mine)
    assert decoded == [r for r in range(40) if r % 8 >= 4]                  # the other process's rows: never decoded
    assert torch.equal(torch.cat(mine)[:, 0], torch.from_numpy(np.concatenate([rows[i:i + 4] for i in range(4, 40, 8)])))


def test_decoding_in_worker_processes_gives_the_same_tensor(images, monkeypatch):
    import zoo.data.images as zimages

    folder, rows = images
    clear_memo()
    serial = load_tensors(str(folder), "train")
    monkeypatch.setattr(zimages, "PARALLEL_MIN", 1)
    monkeypatch.setenv("ZOO_DECODE_WORKERS", "2")
    clear_memo()
    from zoo.data import to_tensor

    parallel = to_tensor(load_dataset(str(folder), "train"))
    assert torch.equal(parallel, serial) and torch.equal(parallel[:, 0], torch.from_numpy(rows))
