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


UNSUPPORTED = {"ACCELERATE_USE_FSDP": "FSDP", "ACCELERATE_USE_DEEPSPEED": "DeepSpeed",
               "ACCELERATE_USE_MEGATRON_LM": "Megatron-LM"}
TRACKERS = {"wandb": "wandb", "trackio": "trackio", "mlflow": "mlflow", "tensorboard": "tensorboard"}


def trackers(report_to: str) -> list[str]:
    """``--report-to``: comma-separated tensorboard, wandb, trackio, mlflow; all (the installed ones); none;
    auto (tensorboard when installed: it is the ``train`` extra)."""
    import importlib.util

    names = [n.strip() for n in str(report_to).split(",") if n.strip()]
    if names == ["none"]:
        return []
    if names == ["auto"]:
        return ["tensorboard"] if importlib.util.find_spec("tensorboard") is not None else []
    if names == ["all"]:
        return [n for n, module in TRACKERS.items() if importlib.util.find_spec(module) is not None]
    for name in names:
        if name not in TRACKERS:
            raise TrainingError(f"--report-to {name!r}: choose from {', '.join(TRACKERS)}, all or none")
        if importlib.util.find_spec(TRACKERS[name]) is None:
            raise TrainingError(f"--report-to {name}: the {TRACKERS[name]} package is not installed "
                                f"(pip install {TRACKERS[name]})")
    return names


def _make_accelerator(device: torch.device, precision: str | None, log_with: list[str] | None = None,
                      project_dir: str | None = None):
    """The accelerate engine.  ``precision=None`` takes accelerate's own setting (``accelerate launch
    --mixed_precision``, ``accelerate config``: the ACCELERATE_MIXED_PRECISION environment), else "no"."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    for var, name in UNSUPPORTED.items():
        if os.environ.get(var, "").lower() in ("1", "true", "yes"):
            raise TrainingError(f"{name} is not supported by the zoo trainer (DDP only): launch without it "
                                f"(accelerate launch --multi_gpu ..., or torchrun)")
    if _dist_env()[1] == 1:  # several runs in one process may use different settings
        AcceleratorState._reset_state()
        GradientState._reset_state()
    if device.type == "cuda" and device.index is not None and _dist_env()[1] == 1:
        torch.cuda.set_device(device.index)
    if precision == "fp16" and device.type == "cpu":
        raise TrainingError("precision fp16 needs a GPU; on CPU use bf16 or no")
    accelerator = Accelerator(cpu=device.type == "cpu", mixed_precision=precision,
                              step_scheduler_with_optimizer=False, log_with=log_with or None,
                              project_dir=project_dir)
    if accelerator.mixed_precision == "fp16" and device.type == "cpu":
        raise TrainingError("precision fp16 (from accelerate's configuration) needs a GPU; on CPU use bf16 or no")
    if accelerator.mixed_precision not in ("no", "bf16", "fp16"):
        raise TrainingError(f"precision {accelerator.mixed_precision!r} is not supported; use no, bf16 or fp16")
    return accelerator


def default_threads(device: torch.device, threads: int | None) -> int | None:
    """CPU threads per process: ``threads`` if given; several processes on one machine share its cores
    (cores // processes, at least 1); one process keeps torch's default."""
    if threads:
        return threads
    local = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    if device.type == "cpu" and local > 1:
        return max(1, (os.cpu_count() or 1) // local)
    return None


def micro_batch(batch_size: int, world: int, grad_accum: int) -> int:
    """The rows of one forward pass: the global batch split over processes and gradient-accumulation steps."""
    micro, rem = divmod(batch_size, world * grad_accum)
    if rem or micro < 1:
        raise TrainingError(f"batch_size {batch_size} (global) must be a multiple of processes x "
                            f"grad_accum = {world} x {grad_accum}")
    return micro


def seed_processes(seed: int, rank: int) -> None:
    """python and numpy seeded per process; torch's too on processes other than the first (distinct noise)."""
    import random

    import numpy as np

    random.seed(seed + rank)
    np.random.seed((seed + rank) % 2 ** 32)
    if rank:
        torch.manual_seed(seed + 7919 * rank)
