"""The full training state on disk: one folder per checkpoint, written atomically, never pickled.

    checkpoints/step-00000100/
        model.safetensors        raw weights
        ema.safetensors          EMA weights (when EMA is on)
        optimizer.safetensors    optimiser state tensors ("state.<param>.<key>")
        rng-rank<r>.safetensors  torch CPU / CUDA / MPS generator states of process r (uint8)
        rng-rank<r>.json         numpy and python ``random`` states of process r
        state.json               step, data position, config, scheduler, optimiser scalars,
                                 grad-scaler, card fingerprint, and a manifest: size + sha256
                                 of every other file (written last)

A checkpoint is assembled in ``checkpoints/.step-00000100.partial/`` and renamed into place
only once every file is written and fsynced, so a process killed at any moment (kill -9, power
loss) leaves the previous checkpoints untouched and readable; ``*.partial`` folders are ignored
and cleaned up by the next run.  Loading verifies the manifest and falls back to the previous
checkpoint when one is damaged, saying so.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from zoo.store.atomic import _fsync_dir
from zoo.errors import ZooError

STATE = "state.json"
_STEP_DIR = re.compile(r"^step-(\d+)$")
FORMAT = 1


class CheckpointError(ZooError):
    """No usable checkpoint, or one that belongs to another model."""


# --------------------------------------------------------------------------------------------
# files


def _write_bytes(path: Path, data: bytes) -> None:
    """Write and fsync one file (tests replace this to simulate a kill mid-write)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tensors_bytes(tensors: dict[str, Tensor]) -> bytes:
    from safetensors.torch import save

    return save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})


def _read_tensors(data: bytes) -> dict[str, Tensor]:
    from safetensors.torch import load

    return load(data)


# --------------------------------------------------------------------------------------------
# optimiser <-> (tensors, json)


def flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    tensors, scalars = {}, {}
    for idx, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, Tensor):
                tensors[f"state.{idx}.{key}"] = value
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"scalars": scalars, "param_groups": state["param_groups"]}


def unflatten_optimizer(tensors: dict[str, Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = value
    for name, value in meta["scalars"].items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


# --------------------------------------------------------------------------------------------
# random number generators


def capture_rng() -> tuple[dict[str, Tensor], dict[str, Any]]:
    """This process's torch (CPU, CUDA, MPS), numpy and python RNG states."""
    tensors = {"torch.cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch.cuda.{i}"] = s
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        tensors["torch.mps"] = torch.mps.get_rng_state()
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    meta = {"numpy": [kind, [int(k) for k in keys], int(pos), int(has_gauss), float(gauss)],
            "python": [version, list(internal), gauss_next]}
    return tensors, meta


def restore_rng(tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch.cpu"])
    cuda = sorted((int(k.rsplit(".", 1)[1]), v) for k, v in tensors.items() if k.startswith("torch.cuda."))
    if cuda and torch.cuda.is_available():
        for i, s in cuda[:torch.cuda.device_count()]:
            torch.cuda.set_rng_state(s, i)
    if "torch.mps" in tensors and getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        torch.mps.set_rng_state(tensors["torch.mps"])
    kind, keys, pos, has_gauss, gauss = meta["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = meta["python"]
    random.setstate((version, tuple(internal), gauss_next))


# --------------------------------------------------------------------------------------------
# checkpoints


@dataclass
class Checkpoint:
    """A verified checkpoint read back from disk."""

    path: Path
    step: int
    meta: dict[str, Any]
    tensors: dict[str, dict[str, Tensor]]          # "model", "optimizer", optionally "ema"
    rng: tuple[dict[str, Tensor], dict[str, Any]] | None  # this process's, None if absent
    skipped: list[str] = field(default_factory=list)  # damaged newer checkpoints, with reasons


class CheckpointManager:
    """Writes ``root/step-N`` folders atomically and keeps the newest ``keep``."""

    def __init__(self, root: str | Path, keep: int = 3, *, rank: int = 0, world_size: int = 1,
                 barrier: Callable[[], None] = lambda: None):
        self.root = Path(root)
        self.keep = keep
        self.rank, self.world_size, self.barrier = rank, world_size, barrier

    # -- listing -------------------------------------------------------------------------------
    def steps(self) -> list[tuple[int, Path]]:
        """Complete checkpoints, newest first."""
        if not self.root.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.root.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir()]
        return sorted(found, reverse=True)

    def clean_partial(self) -> None:
        if self.rank == 0 and self.root.is_dir():
            for p in self.root.glob(".step-*.partial"):
                shutil.rmtree(p, ignore_errors=True)

    # -- saving --------------------------------------------------------------------------------
    def save(self, step: int, tensors: dict[str, dict[str, Tensor]], meta: dict[str, Any]) -> Path:
        """Every process calls this (it writes its RNG state); process 0 writes the rest."""
        final = self.root / f"step-{step:08d}"
        tmp = self.root / f".step-{step:08d}.partial"
        if self.rank == 0:
            self.root.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
        self.barrier()
        rng_tensors, rng_meta = capture_rng()
        _write_bytes(tmp / f"rng-rank{self.rank}.safetensors", _tensors_bytes(rng_tensors))
        _write_bytes(tmp / f"rng-rank{self.rank}.json", json.dumps(rng_meta).encode())
        self.barrier()
        if self.rank == 0:
            manifest = {}
            for name, group in tensors.items():
                data = _tensors_bytes(group)
                _write_bytes(tmp / f"{name}.safetensors", data)
                manifest[f"{name}.safetensors"] = {"bytes": len(data), "sha256": _sha256(data)}
            for r in range(self.world_size):
                for suffix in ("safetensors", "json"):
                    data = (tmp / f"rng-rank{r}.{suffix}").read_bytes()
                    manifest[f"rng-rank{r}.{suffix}"] = {"bytes": len(data), "sha256": _sha256(data)}
            body = {"format": FORMAT, "step": step, "world_size": self.world_size, **meta, "files": manifest}
            _write_bytes(tmp / STATE, (json.dumps(body, indent=1) + "\n").encode())
            _fsync_dir(tmp)
            if final.exists():  # the same step saved again (e.g. a finished run resumed)
                old = self.root / f".step-{step:08d}.old.partial"
                shutil.rmtree(old, ignore_errors=True)
                os.replace(final, old)
                shutil.rmtree(old, ignore_errors=True)
            os.replace(tmp, final)
            _fsync_dir(self.root)
            self.prune()
        self.barrier()
        return final

    def prune(self) -> None:
        for _, path in self.steps()[max(self.keep, 1):]:
            shutil.rmtree(path, ignore_errors=True)

    # -- loading -------------------------------------------------------------------------------
    def load_latest(self) -> Checkpoint:
        """The newest checkpoint that verifies; damaged newer ones are listed in ``skipped``."""
        candidates = self.steps()
        if not candidates:
            raise CheckpointError(f"no checkpoint to resume from in {self.root} "
                                  f"(a run writes checkpoints there every checkpoint_every steps)")
        skipped = []
        for step, path in candidates:
            try:
                ckpt = self.read(path)
            except CheckpointError as e:
                skipped.append(f"{path.name}: {e}")
                continue
            ckpt.skipped = skipped
            return ckpt
        raise CheckpointError(f"every checkpoint in {self.root} is damaged: " + "; ".join(skipped))

    def read(self, path: Path) -> Checkpoint:
        try:
            meta = json.loads((path / STATE).read_text())
        except FileNotFoundError:
            raise CheckpointError(f"{STATE} is missing") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{STATE} is not valid JSON ({e})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT or "files" not in meta:
            raise CheckpointError(f"{STATE} is not a latent-zoo training state (format {FORMAT})")
        blobs = {}
        for name, info in meta["files"].items():
            try:
                data = (path / name).read_bytes()
            except OSError as e:
                raise CheckpointError(f"{name} is unreadable ({e.strerror or e})") from None
            if len(data) != info["bytes"] or _sha256(data) != info["sha256"]:
                raise CheckpointError(f"{name} is corrupted ({len(data)} bytes, checksum mismatch)")
            blobs[name] = data
        tensors = {}
        for name, data in blobs.items():
            if name.endswith(".safetensors") and not name.startswith("rng-"):
                try:
                    tensors[name[:-len(".safetensors")]] = _read_tensors(data)
                except Exception as e:  # noqa: BLE001
                    raise CheckpointError(f"{name} is not a safetensors file ({e})") from None
        rng = None
        key = f"rng-rank{self.rank}"
        if f"{key}.safetensors" in blobs and f"{key}.json" in blobs:
            rng = (_read_tensors(blobs[f"{key}.safetensors"]), json.loads(blobs[f"{key}.json"]))
        return Checkpoint(path, int(meta["step"]), meta, tensors, rng)
