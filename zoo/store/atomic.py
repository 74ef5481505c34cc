"""Atomic file writes: write beside the target, fsync, then rename over it."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it replaces ``target`` atomically."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes it 0600; the file gets what open() would give
        os.replace(tmp_path, target)
        _fsync_dir(target.parent)
    finally:
        tmp_path.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(target: str | os.PathLike, data: bytes | str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def save_atomic(target: str | os.PathLike, writer: Callable[[str], None]) -> None:
    """``writer(path)`` writes the file (e.g. ``safetensors.torch.save_file``); the result lands atomically."""
    with atomic_path(target) as tmp:
        writer(str(tmp))


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
