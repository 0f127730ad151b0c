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
    a pool of fresh ("spawn") processes: safe even when the parent holds threads (torch),
    at the cost of ~1 s start-up. `func` and `initializer` must be module-level functions."""
    if workers <= 1 or len(items) <= 1:
        if initializer is not None:
            initializer(*initargs)
        yield from map(func, items)
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(min(workers, len(items)), initializer, initargs) as pool:
        chunk = max(1, min(16, len(items) // (workers * 8)))
        yield from pool.imap(func, items, chunksize=chunk)
