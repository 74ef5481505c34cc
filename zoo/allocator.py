"""The C allocator of a training or evaluation process (glibc only), set once at start-up.

By default glibc serves blocks above 128 KiB (growing adaptively up to 32 MiB) with mmap and returns freed
memory at the top of the heap to the system beyond 128 KiB.  A training step frees its activations and
gradients and asks for them again on the next step, so the process keeps unmapping and faulting the same
pages in: about 30% of CPU training time in ``zoo train vae-mnist`` (issue 22's profile, 795k minor page
faults where the same loop with these settings takes far fewer).  Raising both thresholds together keeps
that memory in the process (mallopt(3)):

    M_MMAP_THRESHOLD = 64 MiB    blocks below this come from the heap, not from a fresh mmap
    M_TRIM_THRESHOLD = 512 MiB   the heap is trimmed back to the system only when this much is free at its top

Setting only one of the two measured worse than neither.  The cost is memory: the process keeps up to the
trim threshold of freed heap (measured +90-120 MB peak on ``vae-mnist``; see README, Performance).

``ZOO_MALLOC=default`` leaves glibc's behaviour alone, and so does a ``GLIBC_TUNABLES`` that already sets
a malloc threshold (the user's own choice wins).  Elsewhere (macOS, Windows, musl) this does nothing.
"""
from __future__ import annotations

import os
import sys

M_TRIM_THRESHOLD = -1  # glibc's <malloc.h> parameter numbers
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 64 * 2 ** 20
TRIM_THRESHOLD = 512 * 2 ** 20

_applied: bool | None = None


def tune_allocator() -> bool:
    """Set glibc's mmap and trim thresholds for this process (once; later calls return the first answer).
    True when they were set; False where this is not glibc, or ``ZOO_MALLOC=default``, or the user's
    ``GLIBC_TUNABLES`` sets a malloc threshold already."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if (not sys.platform.startswith("linux") or os.environ.get("ZOO_MALLOC", "") == "default"
            or "malloc.mmap_threshold" in tunables or "malloc.trim_threshold" in tunables):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # both or neither: one alone measured slower than glibc's defaults
    if mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1:
        _applied = True
    return _applied
