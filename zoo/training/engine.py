"""The engine of a training run: the device, the process rank and world size, the Hugging Face
``accelerate`` Accelerator, and an RNG fork that keeps evaluation off the training RNG."""
from __future__ import annotations

import contextlib
import os

import torch

from zoo.errors import TrainingError


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA, then MPS, then CPU; a named device must exist here (never a silent fallback)."""
    if name != "auto":
        try:
            device = torch.device(name)
        except (RuntimeError, ValueError):
            raise TrainingError(f"--device {name!r} is not a device name; use auto, cpu, cuda, cuda:N or mps") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise TrainingError(f"--device {name!r}: CUDA is not available on this machine (torch {torch.__version__}"
                                f"{', a CPU build' if torch.version.cuda is None else ''}); use --device cpu or auto")
        if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
            raise TrainingError(f"--device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise TrainingError(f"--device {name!r}: MPS is not available on this machine; use --device cpu or auto")
        if device.type not in ("cpu", "cuda", "mps"):
            raise TrainingError(f"--device {name!r}: the trainer runs on cpu, cuda or mps")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@contextlib.contextmanager
def isolated_rng(device: torch.device, seed: int):
    """Evaluation and sampling must not move the training RNG (exact resume)."""
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _dist_env() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _make_accelerator(device: torch.device, precision: str):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    if _dist_env()[1] == 1:  # several runs in one process may use different settings
        AcceleratorState._reset_state()
        GradientState._reset_state()
    if device.type == "cuda" and device.index is not None and _dist_env()[1] == 1:
        torch.cuda.set_device(device.index)
    if precision == "fp16" and device.type == "cpu":
        raise TrainingError("precision fp16 needs a GPU; on CPU use bf16 or no")
    return Accelerator(cpu=device.type == "cpu", mixed_precision=precision,
                       step_scheduler_with_optimizer=False)
