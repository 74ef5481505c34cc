"""The data of a training run: the training rows (in memory or streamed), the held-out test rows, and the
validation draw (held-out training images for model selection, never the test split)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from zoo.cards import Card
from zoo.errors import CardError, ShapeError, TrainingError
from zoo.training.config import TrainConfig
from zoo.training.stream import _stream_rows, _take

VALIDATION_SEED = 0  # the fixed draw of the validation images (TrainConfig.validation) from the training split


@dataclass(frozen=True)
class RunData:
    train: Any                   # uint8 images [N, C, H, W], or a streamed data set
    test_x: torch.Tensor         # the held-out split (its first 10000 rows when streamed)
    val_x: torch.Tensor | None   # the validation draw (TrainConfig.validation), else None
    rows: int | None             # training rows (None: a stream of unknown size)
    test_split: str


def check_shape(x: torch.Tensor, card: Card, spec: str) -> None:
    if tuple(x.shape[1:]) != card.data_shape:
        shape = ",".join(str(s) for s in x.shape[1:])
        raise ShapeError(f"data {spec!r} has images of shape {list(x.shape[1:])} (channels, height, width) "
                         f"but model {card.name!r} expects {list(card.data_shape)}; to train its architecture at the "
                         f"data's size pass --data-shape {shape} (zoo.train(..., data_shape=({shape}))), or write a "
                         f"card with `extends: {card.name}` that sets the data shape and the architecture for it")


def load_run_data(card: Card, spec: str, config: TrainConfig, *, image_key: str | None = None,
                  data_config: str | None = None) -> RunData:
    from zoo.data import card_source_options, load_dataset, load_tensors

    data = card.spec.data
    test_split = data.test_split
    train_split = data.split if spec == data.source else "train"
    source = card_source_options(spec, data, image_key)  # image_key / pinned revision
    if data_config:
        source["config"] = data_config
    if config.streaming:
        train = load_dataset(spec, train_split, streaming=True, **source)
        test_x = _take(load_dataset(spec, test_split, streaming=True, **source), 10000, card.data_shape)
        check_shape(test_x, card, spec)
        return RunData(train, test_x, None, _stream_rows(train), test_split)
    train = load_tensors(spec, train_split, **source)
    test_x = load_tensors(spec, test_split, **source)
    check_shape(train, card, spec)
    val_x = None
    if config.validation:
        n = len(train)
        if config.validation >= n:
            raise CardError(f"validation {config.validation} (--validation): the training split of {spec} "
                            f"has only {n} images")
        order = torch.randperm(n, generator=torch.Generator().manual_seed(VALIDATION_SEED))
        val_x = train[order[:config.validation]]
        train = train[order[config.validation:].sort().values]
    return RunData(train, test_x, val_x, len(train), test_split)


def total_steps(config: TrainConfig, rows: int | None, spec: str) -> int:
    """The run's optimiser steps: ``steps``, else ``epochs`` over the training rows."""
    if rows is not None and rows < config.batch_size:
        raise TrainingError(f"data {spec!r} has {rows} training rows, fewer than one batch ({config.batch_size})")
    if config.steps:
        return config.steps
    if rows is None:
        raise TrainingError(f"data {spec!r} is streamed and its size is unknown: give --steps")
    return config.epochs * (rows // config.batch_size)
