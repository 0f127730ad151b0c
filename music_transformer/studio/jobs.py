"""Generation jobs: one at a time on one worker thread, the rest queued, each cancellable.

A job is a function run on the worker with a `Job` to report through. Cancel sets a flag the
job's sampler polls after every decoding step (`Job.should_stop`), so the loop stops within
one step, not at the end of the batch. A job nobody is watching — no event stream open and
no status request for `orphan_seconds` (the tab was closed) — stops the same way, so a
closed page never leaves the CPU busy.

Events (progress, a take kept, the end) are kept in order on the job; event streams read
them from any position, so a page that reconnects misses nothing.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .generation import Cancelled

FINISHED = ("done", "failed", "cancelled")


@dataclass
class Job:
    """One queued or running piece of work.

    Attributes:
        id: "j1", "j2", ... in order of submission.
        kind: "candidates" or "blind".
        piece: the piece it adds takes to.
        request: the settings it was asked with (echoed to the page).
        state: "queued", "running", "done", "failed" or "cancelled".
        progress: fraction of the music asked for made so far, 0..1.
        message: why it failed or stopped (one line), else "".
        takes: ids of the takes it kept, in order.
    """

    id: str
    kind: str
    piece: str
    request: dict[str, Any]
    run: Callable[[Job], None]
    state: str = "queued"
    progress: float = 0.0
    message: str = ""
    takes: list[str] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    cancel_requested: bool = False
    watchers: int = 0
    last_seen: float = field(default_factory=time.monotonic)
    orphan_seconds: float = 30.0
    _sent: tuple[float, float] = (0.0, 0.0)  # (fraction, monotonic time) of the last event

    def emit(self, name: str, **data: Any) -> None:
        self.events.append((name, {"job": self.id, **data}))

    def report(self, fraction: float) -> None:
        """Progress from the sampler: kept always, sent as an event when it moved ≥ 1%
        since the last one sent (or ≥ 1 s passed), and at the end."""
        self.progress = fraction
        now = time.monotonic()
        if fraction - self._sent[0] >= 0.01 or now - self._sent[1] >= 1.0 or fraction >= 1.0:
            self._sent = (fraction, now)
            self.emit("progress", progress=round(fraction, 3), elapsed=self.elapsed())

    def elapsed(self) -> float:
        return round(time.time() - self.started, 2) if self.started else 0.0

    def orphaned(self) -> bool:
        idle = time.monotonic() - self.last_seen
        return self.watchers == 0 and idle > self.orphan_seconds

    def should_stop(self) -> bool:
        if self.orphaned() and not self.cancel_requested:
            self.cancel_requested = True
            self.message = "stopped: nobody was watching (the page was closed)"
        return self.cancel_requested

    def seen(self) -> None:
        self.last_seen = time.monotonic()

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "piece": self.piece, "state": self.state,
            "progress": round(self.progress, 3), "message": self.message, "takes": self.takes,
            "request": self.request, "elapsed": self.elapsed(),
        }  # fmt: skip


class JobQueue:
    """The studio's single generation worker and its queue (first in, first out)."""

    def __init__(self, orphan_seconds: float = 30.0):
        self.orphan_seconds = orphan_seconds
        self.jobs: dict[str, Job] = {}
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._ids = itertools.count(1)
        self._worker = threading.Thread(target=self._work, name="studio-generation", daemon=True)
        self._worker.start()

    def submit(self, kind: str, piece: str, request: dict[str, Any], run) -> Job:
        job = Job(f"j{next(self._ids)}", kind, piece, request, run)
        job.orphan_seconds = self.orphan_seconds
        self.jobs[job.id] = job
        job.emit("queued", position=self.waiting())
        self._queue.put(job)
        return job

    def waiting(self) -> int:
        return sum(1 for j in self.jobs.values() if j.state == "queued")

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def cancel(self, job: Job) -> None:
        if job.state in FINISHED:
            return
        job.cancel_requested = True
        job.message = job.message or "cancelled"
        if job.state == "queued":  # never started: finished now, the worker skips it
            self._finish(job, "cancelled")

    def cancel_all(self) -> None:
        for job in list(self.jobs.values()):
            self.cancel(job)

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel everything and let the worker end (server shutdown)."""
        self.cancel_all()
        self._queue.put(None)
        self._worker.join(timeout)

    def _finish(self, job: Job, state: str) -> None:
        job.state, job.finished = state, time.time()
        job.emit(state, message=job.message, takes=job.takes, elapsed=job.elapsed())

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            if job.state != "queued":
                continue
            if job.should_stop():  # cancelled or abandoned while it waited
                self._finish(job, "cancelled")
                continue
            job.state, job.started = "running", time.time()
            job.emit("running")
            try:
                job.run(job)
                self._finish(job, "done")
            except Cancelled:
                self._finish(job, "cancelled")
            except ValueError as e:  # the library's one-line errors: bad primer, settings
                job.message = str(e).splitlines()[0] if str(e) else type(e).__name__
                self._finish(job, "failed")
            except Exception as e:  # never kill the worker; the page shows one line
                job.message = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                self._finish(job, "failed")
