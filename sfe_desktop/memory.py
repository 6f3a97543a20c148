"""Process-wide allocator settings for CPU inference.

A CPU forward pass allocates and frees activation buffers of tens of megabytes per layer. With
glibc's defaults, buffers above the mmap threshold (at most 32 MB) are mapped and unmapped on every
call, freed heap tops are trimmed back to the system, and each thread may get its own arena that is
trimmed as well, so every batch page-faults its activations in again. On the 2-core reference machine
that kernel time was larger than the model's arithmetic: the Lite2 tower at batch 16 took 71-82 ms per
image with 76-84 ms of system time, against 27-31 ms with the settings below
(``benchmarks/bench_indexing.py`` prints both the pipeline and the bare backbone).

:func:`tune_allocator` keeps freed memory in the process instead: one arena, no per-buffer mmap, and
trimming only above :data:`TRIM_THRESHOLD`. The cost is resident memory that stays at its high-water mark
(up to that threshold) after a large batch. The entry points (CLI, GUI) call it once at start; the
library never calls it on import. Set ``SFE_MALLOC_TUNING=0`` to leave the allocator alone.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger(__name__)

# glibc <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8

TRIM_THRESHOLD = 1 << 30  # free heap above 1 GiB goes back to the system

_applied: bool | None = None


def tune_allocator() -> bool:
    """Apply the settings once (Linux with glibc only). Return whether they are in effect."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get("SFE_MALLOC_TUNING", "1").strip() == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - raises AttributeError on a non-glibc libc (musl)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = all(mallopt(param, value) == 1 for param, value in (
        (M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, TRIM_THRESHOLD)))
    _applied = ok
    log.debug("allocator tuning %s", "applied" if ok else "refused by mallopt")
    return ok
