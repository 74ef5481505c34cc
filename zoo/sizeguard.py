"""Refuse a component whose tensors would not fit in this machine's memory, before they are allocated.

Two checks, neither of which builds anything twice or runs a tensor op on the meta device (meta kernels
call ``torch._check``, which imports sympy and torch's compiler stack: about 1.4 s of every load):

1. a *declared* estimate: a component class may define ``parameter_count(data_shape, latent_shape, **args)``
   (``zoo.contracts.DeclaredSize``), plain arithmetic on the card's arguments, called before the factory;
2. an *allocation guard* around the real build: a ``TorchFunctionMode`` that sees every tensor constructor
   (``torch.empty``, ``zeros``, ``randn``, ...) with its requested size before memory is taken, adds up the
   bytes and stops the build as soon as the running total exceeds the machine's memory.

The guard counts every constructed tensor (parameters, buffers and the few temporaries a factory makes), so the
total it reports is what the build asked for up to the point it stopped: a lower bound of the full size.
"""
from __future__ import annotations

import math
import os
from typing import Any, Callable

import torch
from torch.overrides import TorchFunctionMode

# constructors whose leading arguments (or ``size=``) give the shape; the rest (arange, tensor, eye, ...) make
# small tensors whose size is not in their arguments and are not counted
_SIZED = {torch.empty, torch.zeros, torch.ones, torch.rand, torch.randn, torch.full, torch.empty_strided}


class TooBig(Exception):
    """Raised inside a build by :class:`AllocationGuard` when the running total passes ``limit``."""

    def __init__(self, counted: int, limit: int):
        super().__init__(f"{counted} bytes requested, more than {limit}")
        self.counted, self.limit = counted, limit


def memory_bytes() -> int | None:
    """This machine's physical memory in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _shape(func, args: tuple, kwargs: dict) -> tuple[int, ...] | None:
    if "size" in kwargs:
        size = kwargs["size"]
    elif not args:
        return None
    elif isinstance(args[0], (tuple, list, torch.Size)):
        size = args[0]
    else:  # torch.empty(3, 4): the leading integers (torch.full's fill value follows a tuple, not loose ints)
        size = []
        for a in args:
            if not isinstance(a, int) or isinstance(a, bool):
                break
            size.append(a)
    try:
        return tuple(int(s) for s in size)
    except (TypeError, ValueError):
        return None


def _bytes(func, args: tuple, kwargs: dict) -> int:
    device = kwargs.get("device")
    if device is None:
        device = torch.get_default_device()
    if torch.device(device).type == "meta":
        return 0
    shape = _shape(func, args, kwargs)
    if shape is None or any(s < 0 for s in shape):
        return 0  # torch itself refuses a negative size, with its own message
    dtype = kwargs.get("dtype") or torch.get_default_dtype()
    return math.prod(shape) * dtype.itemsize


class AllocationGuard(TorchFunctionMode):
    """Adds up the bytes every sized tensor constructor asks for; raises :class:`TooBig` past ``limit``."""

    def __init__(self, limit: int | None):
        super().__init__()
        self.limit, self.counted = limit, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _SIZED and self.limit:
            self.counted += _bytes(func, args, kwargs)
            if self.counted > self.limit:
                raise TooBig(self.counted, self.limit)
        return func(*args, **kwargs)


def declared_bytes(factory: Any, data_shape, latent_shape, args: dict[str, Any]) -> int | None:
    """Bytes of float32 parameters from the factory's own ``parameter_count`` (None when it declares none
    or the arithmetic fails on these arguments: the build reports bad arguments itself)."""
    count: Callable[..., int] | None = getattr(factory, "parameter_count", None)
    if not callable(count):
        return None
    try:
        return int(count(data_shape=data_shape, latent_shape=latent_shape, **args)) * 4
    except Exception:  # noqa: BLE001 - the real call reports the factory's own errors
        return None
