"""Who may write a run folder: one training process at a time, and never over a user's files.

A folder ``zoo train`` writes is marked with ``.zoo-run`` (JSON: the card and when it started).
:func:`check_out_folder` refuses a non-empty folder that is not such a run (unless ``--overwrite``,
and even then it refuses to overwrite a file latent-zoo did not write); :class:`RunLock` holds a
real file lock (``filelock``: released by the OS when the process dies) on ``.zoo-run.lock`` for the
whole run, so a second ``zoo train`` into the same folder is refused naming the holder's pid.

:class:`FolderGuard` is the one guard of every other command that writes a folder (``fit-prior``,
``compare --out``, ``sweep``, ``save_pretrained``): the same checks and lock, for the folder's kind (the
marker's ``kind``), staging and then moving into place.
"""
from __future__ import annotations

import contextlib
import errno
import fnmatch
import json
import os
import time
from pathlib import Path

from zoo.errors import TrainingError

MARKER = ".zoo-run"
LOCK = ".zoo-run.lock"
LOCK_PID = ".zoo-run.lock.pid"
# everything a training run writes into its folder (files or folders)
OWNED = ("model.safetensors", "model_raw.safetensors", "model_best.safetensors", "config.json", "README.md",
         "metrics.csv", "checkpoints", "tensorboard", "samples", MARKER, LOCK, LOCK_PID)
# what each kind of folder latent-zoo writes holds (fnmatch patterns); the marker's "kind" says which
KIND_FILES = {
    "run": OWNED,
    "model": ("model.safetensors", "model_raw.safetensors", "model_best.safetensors", "config.json", "README.md",
              MARKER, LOCK, LOCK_PID),
    "compare": ("compare.md", "compare.json", "compare.png", "runs", MARKER, LOCK, LOCK_PID),
    "sweep": ("sweep.csv", "sweep.md", "sweep.json", "*.png", "beta-*", MARKER, LOCK, LOCK_PID),
}


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
    kind = folder_kind(folder)
    if kind in ("compare", "sweep"):  # latent-zoo's, but not a run: its tables and figures are not replaced
        raise TrainingError(f"--out {folder} holds a `zoo {kind}` folder, not a training run; choose another --out")
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


def mark_run(folder: Path, card_name: str, kind: str = "run") -> None:
    """Write the marker that says latent-zoo owns the ``kind`` files in ``folder`` (a run, a saved model, ...)."""
    from zoo.store.atomic import write_atomic

    if not (folder / MARKER).is_file():
        meta = {"card": card_name, "started": time.time()}
        if kind != "run":
            meta["kind"] = kind
        write_atomic(folder / MARKER, json.dumps(meta) + "\n")


def remove_owned(folder: Path) -> None:
    """--overwrite of a run: remove what the previous run wrote (and nothing else; model_best included)."""
    import shutil

    for name in ("checkpoints", "tensorboard", "samples", "metrics.csv", "model.safetensors", "model_raw.safetensors",
                 "model_best.safetensors"):
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
        except Timeout:  # (a TimeoutError, hence an OSError: first)
            try:
                holder = (self.folder / LOCK_PID).read_text().strip()
            except OSError:
                holder = "unknown"
            raise TrainingError(f"{self.folder} is being written by another latent-zoo process (pid {holder}); "
                                f"wait for it to finish, stop it, or choose another --out") from None
        except OSError as e:  # disk full, read-only, no permission: named, not a traceback
            raise TrainingError(f"cannot write the lock file {self.folder / LOCK}: {e.strerror or e}"
                                + (" (the disk is full)" if e.errno == errno.ENOSPC else "")) from None
        try:
            (self.folder / LOCK_PID).write_text(f"{os.getpid()}\n")
        except OSError as e:
            lock.release()
            raise TrainingError(f"cannot write {self.folder / LOCK_PID}: {e.strerror or e}"
                                + (" (the disk is full)" if e.errno == errno.ENOSPC else "")) from None
        self._lock = lock
        return self

    def release(self) -> None:
        if self._lock is not None:
            (self.folder / LOCK_PID).unlink(missing_ok=True)
            self._lock.release()
            self._lock = None


# -- the one guard of every command that writes a folder -------------------------------------------
def folder_kind(folder: Path) -> str | None:
    """What latent-zoo wrote ``folder`` as (the marker's kind: run, model, compare, sweep), or None."""
    try:
        meta = json.loads((folder / MARKER).read_text())
        return str(meta.get("kind", "run")) if isinstance(meta, dict) else "run"
    except FileNotFoundError:
        pass
    except (OSError, ValueError):
        return "run"
    if is_run_folder(folder):  # earlier versions: no marker
        return "run" if (folder / "checkpoints").is_dir() else "model"
    for kind, table, keys in (("compare", "compare.json", {"models", "mi_split"}), ("sweep", "sweep.json", {"meta", "rows"})):
        try:  # a `zoo compare` / `zoo sweep` folder of an earlier version: its own JSON says so
            written = json.loads((folder / table).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(written, dict) and keys <= set(written):
            return kind
    return None


def _owned(name: str, kind: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in KIND_FILES[kind])


def _umask_mode() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o777 & ~mask


class FolderGuard:
    """Who may write ``folder`` as a ``kind`` folder (run, model, compare, sweep), and how.

    ``with FolderGuard(out, kind="model", overwrite=False, flag="--out") as guard:`` checks the folder
    (a folder of another kind, or one holding files latent-zoo did not write, is refused; with ``overwrite``
    files latent-zoo did not write may stay beside but are never replaced), takes the run lock (a live run is
    refused naming its pid), and releases it on exit.  ``guard.stage()`` is a staging folder beside ``out``;
    ``guard.commit(stage)`` moves its files into place (removing first, with ``overwrite``, what the previous
    folder of this kind held: model_best and checkpoints included; nothing else)."""

    def __init__(self, folder: str | os.PathLike, *, kind: str = "run", overwrite: bool = False,
                 flag: str = "--out", replace_own: bool = True, overwrite_flag: str | None = "--overwrite"):
        if kind not in KIND_FILES:
            raise ValueError(f"unknown folder kind {kind!r}")
        self.folder, self.kind, self.overwrite, self.flag = Path(folder), kind, overwrite, flag
        self.replace_own = replace_own  # a folder of the same kind may be written again without overwrite
        self.overwrite_flag = overwrite_flag  # how the caller spells overwrite (None: it has none)
        self.lock: RunLock | None = None
        self._stages: list[Path] = []

    def check(self) -> None:
        """Refuse a folder whose writing could lose anything; read-only."""
        folder, flag = self.folder, self.flag
        if not folder.exists():
            return
        if not folder.is_dir():
            raise TrainingError(f"{flag} {folder} is a file, not a folder")
        names = sorted(p.name for p in folder.iterdir())
        found = folder_kind(folder)
        if found is not None and found != self.kind and not (found == "run" and self.kind == "model" and self.overwrite):
            what = {"run": "a training run", "model": "a saved model", "compare": "a `zoo compare` folder",
                    "sweep": "a `zoo sweep` folder"}.get(found, found)
            hint = (f" (pass {self.overwrite_flag} to replace the run whole)"
                    if found == "run" and self.kind == "model" and self.overwrite_flag else "")
            raise TrainingError(f"{flag} {folder} holds {what}, not a {self.kind} folder; choose another "
                                f"folder{hint}")
        if found is not None and (self.replace_own or self.overwrite):
            return  # latent-zoo's own folder: its files are replaced, the user's beside them kept
        if found is not None:
            raise TrainingError(f"{flag} {folder} already holds a {self.kind}; "
                                + (f"pass {self.overwrite_flag} to replace it, or " if self.overwrite_flag else "")
                                + "choose another folder")
        if set(names) <= {LOCK, LOCK_PID}:
            return  # empty, or only a lock (which says itself whether it is held)
        if not self.overwrite:
            listing = ", ".join(names[:6]) + (" ..." if len(names) > 6 else "")
            raise TrainingError(f"{flag} {folder} is not empty and is not a latent-zoo {self.kind} folder (it holds "
                                f"{listing}); choose an empty or new folder"
                                + (f", or pass {self.overwrite_flag} to write there (files latent-zoo did not write "
                                   f"are never replaced)" if self.overwrite_flag else ""))
        clashing = [n for n in names if _owned(n, self.kind) and n not in (LOCK, LOCK_PID)]
        if clashing:
            raise TrainingError(f"{flag} {folder}: {self.overwrite_flag} would replace {', '.join(clashing)}, which latent-zoo "
                                f"did not write (the folder is not a latent-zoo folder); move them or choose another "
                                f"folder")

    def __enter__(self) -> "FolderGuard":
        self.check()
        self._created, self._committed = not self.folder.exists(), False
        self.lock = RunLock(self.folder).acquire()
        try:
            self.check()  # again under the lock: nothing changed between the look and the lock
        except BaseException:
            self.release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def release(self) -> None:
        import shutil

        for stage in self._stages:
            shutil.rmtree(stage, ignore_errors=True)
        self._stages.clear()
        if self.lock is not None:
            self.lock.release()
            self.lock = None
            if self._created and not self._committed:  # nothing written: leave no folder behind
                (self.folder / LOCK).unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    self.folder.rmdir()

    def stage(self) -> Path:
        """A new staging folder beside the target (mode as the umask gives a new folder, not mkdtemp's 0700)."""
        import tempfile

        try:
            stage = Path(tempfile.mkdtemp(prefix=f".{self.folder.name}.staging-", dir=self.folder.parent))
            os.chmod(stage, _umask_mode())
        except OSError as e:
            raise TrainingError(f"cannot write beside {self.folder}: {e.strerror or e}"
                                + (" (the disk is full)" if e.errno == errno.ENOSPC else "")) from None
        self._stages.append(stage)
        return stage

    def commit(self, stage: Path, card_name: str = "") -> Path:
        """Move the staged files into the folder; with ``overwrite`` (or the same kind) the previous folder's own
        files go first, the user's stay."""
        import shutil

        if self.lock is None:
            raise RuntimeError("FolderGuard.commit outside its with-block")
        found = folder_kind(self.folder)
        try:
            if found is not None:  # latent-zoo's own folder (checked above): clear what it wrote
                for p in self.folder.iterdir():
                    if _owned(p.name, found) and p.name not in (LOCK, LOCK_PID):
                        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
            mark_run(stage, card_name, self.kind)
            for p in stage.iterdir():
                os.replace(p, self.folder / p.name)
            self._committed = True
        except OSError as e:
            raise TrainingError(f"cannot write {self.folder}: {e.strerror or e}"
                                + (" (the disk is full)" if e.errno == errno.ENOSPC else "")) from None
        return self.folder

    def mark(self, card_name: str = "") -> None:
        """Mark the folder (written in place, not staged) as this kind's."""
        mark_run(self.folder, card_name, self.kind)
        self._committed = True
