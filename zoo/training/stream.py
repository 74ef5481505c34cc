"""The training data stream: global batches whose order is a function of (seed, epoch) only,
so a run resumes exactly at (epoch, batch); each process takes its shard of every global batch."""
from __future__ import annotations

from typing import Any, Iterator

import torch

from zoo.data import iterate_batches
from zoo.errors import TrainingError


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed((seed * 1_000_003 + epoch + 1) % (2 ** 63))
    return torch.randperm(n, generator=g)


class Batches:
    """Global batches of ``size`` rows from an in-memory tensor or a HF stream, resumable at
    (epoch, batch).  Each process takes rows ``[lo, hi)`` of every global batch (its shard)."""

    def __init__(self, data: Any, size: int, seed: int, lo: int, hi: int, *, streaming: bool,
                 shape: tuple[int, ...], buffer: int, device: torch.device):
        self.data, self.size, self.seed, self.lo, self.hi = data, size, seed, lo, hi
        self.streaming, self.shape, self.buffer, self.device = streaming, shape, buffer, device
        self.epoch, self.batch = 0, 0
        self._it: Iterator[torch.Tensor] | None = None
        self.per_epoch = None if streaming else len(data) // size

    def seek(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch, self._it = epoch, batch, None

    def position(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batch": self.batch}

    def _epoch_iter(self) -> Iterator[torch.Tensor]:
        if not self.streaming:
            order = epoch_order(len(self.data), self.seed, self.epoch)
            if self.data.device != order.device:
                order = order.to(self.data.device)
            for i in range(self.batch, self.per_epoch):
                yield self.data[order[i * self.size + self.lo:i * self.size + self.hi]]
            return
        ds = self.data.shuffle(seed=(self.seed * 1_000_003 + self.epoch) % (2 ** 32), buffer_size=self.buffer)
        if self.batch:
            ds = ds.skip(self.batch * self.size)
        # every process reads the stream's order but decodes only its own shard of each global batch
        yield from iterate_batches(ds, self.size, drop_last=True, shape=self.shape, keep=(self.lo, self.hi))

    def __next__(self) -> torch.Tensor:
        for _ in range(2):
            if self._it is None:
                self._it = self._epoch_iter()
            x = next(self._it, None)
            if x is not None:
                self.batch += 1
                return x
            if self.batch == 0:
                break
            self.epoch, self.batch, self._it = self.epoch + 1, 0, None
        raise TrainingError(f"the training data has fewer rows than one global batch ({self.size})")


def _stream_rows(ds: Any) -> int | None:
    info = getattr(ds, "info", None)
    splits = getattr(info, "splits", None) or {}
    for split in splits.values():
        if getattr(split, "num_examples", None):
            return int(split.num_examples) if len(splits) == 1 else None
    return None


def _take(ds: Any, n: int, shape: tuple[int, ...]) -> torch.Tensor:
    """The first ``n`` rows of a stream as a uint8 tensor (held-out data of a streamed source)."""
    parts, have = [], 0
    for xs in iterate_batches(ds, min(n, 500), shape=shape):
        parts.append(xs)
        have += len(xs)
        if have >= n:
            break
    return torch.cat(parts)[:n]
