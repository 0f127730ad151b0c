"""Keep freed memory for reuse instead of returning it to the OS (glibc malloc on Linux).

A training step frees and reallocates the same multi-megabyte buffers (attention logits of
one query chunk, the skew's padded copy, their gradients) many times. glibc serves blocks
above its mmap threshold with fresh mmap()s and trims freed heap above its trim threshold,
so each of those buffers would come back as new pages that fault in on first touch — slow
when another process keeps the other cores busy. Raising both thresholds keeps the buffers
in the heap, warm (measurements: bench/results/allocator.md). The cost: up to TRIM_KEEP of
freed memory stays mapped to the process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value: blocks up to 32 MiB from the heap
TRIM_KEEP = 1 << 30  # free heap kept before glibc returns memory to the OS
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
_done: bool | None = None


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds for this process (once); False where the C
    library is not glibc (musl, macOS, Windows) and nothing changed."""
    global _done
    if _done is None:
        _done = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                mallopt = libc.mallopt
            except (OSError, AttributeError):
                return False
            mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
            _done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
                mallopt(_M_TRIM_THRESHOLD, TRIM_KEEP)
            )
    return _done
