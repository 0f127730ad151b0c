"""SIGTERM as a polite stop: `kill`, a batch scheduler's pre-emption or the end of a session
asks a single-process run to finish its current step, save a checkpoint and exit, so
`--resume` loses nothing (a kill -9 loses the steps since the last checkpoint)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class StopRequest:
    requested: bool = False


@contextlib.contextmanager
def stop_on_sigterm(enabled: bool = True) -> Iterator[StopRequest]:
    """While inside, SIGTERM sets `requested` instead of ending the process; the training loop
    looks at it between steps (never mid-step, where weights and step counter could disagree).
    Left alone: other threads, and a SIGTERM handler the host application installed itself."""
    stop = StopRequest()
    main = threading.current_thread() is threading.main_thread()
    if not (enabled and main and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL):
        yield stop
        return

    def request(signum: int, frame: object) -> None:
        stop.requested = True

    signal.signal(signal.SIGTERM, request)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
