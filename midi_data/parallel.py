"""Run a function over many items in worker processes, results in input order."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def parallel_map(
    func: Callable[[T], R],
    items: list[T],
    workers: int,
    initializer: Callable[..., Any] | None = None,
    initargs: tuple[Any, ...] = (),
) -> Iterator[R]:
    """Yield `func(item)` for each item, in order. With workers > 1, items are processed in
    a process pool. `func` and `initializer` must be module-level functions.

    On Linux the pool forks: workers start in milliseconds, and they only run numpy,
    symusic, miditok and music21 code, never torch kernels, so the fork-after-OpenMP hazard
    does not apply. Elsewhere, "spawn" (the caller's script then needs the usual
    `if __name__ == "__main__":` guard)."""
    if workers <= 1 or len(items) <= 1:
        if initializer is not None:
            initializer(*initargs)
        yield from map(func, items)
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with context.Pool(min(workers, len(items)), initializer, initargs) as pool:
        chunk = max(1, min(16, len(items) // (workers * 8)))
        yield from pool.imap(func, items, chunksize=chunk)
