"""Who may write a run folder: one training process at a time, and never over a user's files.

A folder ``zoo train`` writes is marked with ``.zoo-run`` (JSON: the card and when it started).
:func:`check_out_folder` refuses a non-empty folder that is not such a run (unless ``--overwrite``,
and even then it refuses to overwrite a file latent-zoo did not write); :class:`RunLock` holds a
real file lock (``filelock``: released by the OS when the process dies) on ``.zoo-run.lock`` for the
whole run, so a second ``zoo train`` into the same folder is refused naming the holder's pid.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from zoo.errors import TrainingError

MARKER = ".zoo-run"
LOCK = ".zoo-run.lock"
LOCK_PID = ".zoo-run.lock.pid"
# everything a training run writes into its folder (files or folders)
OWNED = ("model.safetensors", "model_raw.safetensors", "config.json", "README.md", "metrics.csv",
         "checkpoints", "tensorboard", "samples", MARKER, LOCK, LOCK_PID)


def is_run_folder(folder: Path) -> bool:
    """A folder ``zoo train`` wrote: the marker, or (runs of earlier versions) config.json with a zoo block
    beside checkpoints/ or model.safetensors."""
    if (folder / MARKER).is_file():
        return True
    if (folder / "checkpoints").is_dir() and any((p / "state.json").is_file() for p in (folder / "checkpoints").glob("step-*")):
        return True
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "zoo" in config and (
        (folder / "checkpoints").is_dir() or (folder / "model.safetensors").is_file())


def check_out_folder(folder: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to train into ``folder`` when that could lose anything; read-only."""
    if resume and overwrite:
        raise TrainingError("--resume and --overwrite contradict each other: --resume continues the run in "
                            f"{folder}, --overwrite replaces it; give one")
    if resume:  # the checkpoints decide (a missing or foreign checkpoint is refused by name there)
        return
    if not folder.exists():
        return
    if not folder.is_dir():
        raise TrainingError(f"--out {folder} is a file, not a folder")
    user_files = sorted(p.name for p in folder.iterdir() if p.name not in OWNED)
    owned_present = sorted(p.name for p in folder.iterdir() if p.name in OWNED)
    if is_run_folder(folder):
        return
    if not user_files and set(owned_present) <= {LOCK, LOCK_PID}:
        return  # empty, or only another run's lock (the lock itself says whether it is held)
    if not overwrite:
        listing = ", ".join((owned_present + user_files)[:6]) + (" ..." if len(owned_present + user_files) > 6 else "")
        raise TrainingError(f"--out {folder} is not empty and is not a latent-zoo run folder (it holds {listing}); "
                            f"choose an empty or new folder, or pass --overwrite to write the run there "
                            f"(files latent-zoo did not write are never replaced)")
    clashing = [n for n in owned_present if n not in (LOCK, LOCK_PID)]
    if clashing:
        raise TrainingError(f"--out {folder}: --overwrite would replace {', '.join(clashing)}, which latent-zoo did not "
                            f"write (the folder is not a run folder); move them or choose another --out")


def mark_run(folder: Path, card_name: str) -> None:
    """Write the marker that says latent-zoo owns the run files in ``folder``."""
    from zoo.store.atomic import write_atomic

    if not (folder / MARKER).is_file():
        write_atomic(folder / MARKER, json.dumps({"card": card_name, "started": time.time()}) + "\n")


def remove_owned(folder: Path) -> None:
    """--overwrite of a run: remove what the previous run wrote (and nothing else)."""
    import shutil

    for name in ("checkpoints", "tensorboard", "samples", "metrics.csv", "model.safetensors", "model_raw.safetensors"):
        p = folder / name
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


class RunLock:
    """An exclusive lock on a run folder for the life of this process's run."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._lock = None

    def acquire(self) -> "RunLock":
        from filelock import FileLock, Timeout

        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TrainingError(f"cannot write the run folder {self.folder}: {e.strerror or e}") from None
        lock = FileLock(str(self.folder / LOCK))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            try:
                holder = (self.folder / LOCK_PID).read_text().strip()
            except OSError:
                holder = "unknown"
            raise TrainingError(f"{self.folder} is being written by another training process (pid {holder}); "
                                f"wait for it to finish, stop it, or choose another --out") from None
        (self.folder / LOCK_PID).write_text(f"{os.getpid()}\n")
        self._lock = lock
        return self

    def release(self) -> None:
        if self._lock is not None:
            (self.folder / LOCK_PID).unlink(missing_ok=True)
            self._lock.release()
            self._lock = None
