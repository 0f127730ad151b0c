"""Keep freed memory for reuse instead of returning it to the OS (glibc malloc on Linux).

A training step frees and reallocates the same multi-megabyte buffers (attention logits of
one query chunk, the skew's padded copy, their gradients) dozens of times. glibc serves
blocks above its mmap threshold with fresh mmap()s, and trims freed heap above its trim
threshold, so each of those buffers comes back as new pages that fault in on first touch:
on a 2-core AMD EPYC VM (AVX2) with the other core busy, zero-filling one 16.8 MB gradient
buffer took 40 ms (0.4 GB/s). Raising both thresholds keeps the buffers in the heap, warm:
with the other core busy, one fp32 training step (batch 2, one thread, alternating
processes) took 1.10-1.27 s instead of 1.52-1.69 for the small preset at L 512, 3.39-3.45
instead of 3.93-4.22 at L 1024, and 11.5-12.2 instead of 12.0-12.6 for the paper preset at
L 1024. With the machine otherwise quiet (2 threads) the difference was within noise
(bench/results/train-ab.md: 0.96-1.09×). The cost: up to TRIM_KEEP of freed memory stays
mapped to the process.
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
