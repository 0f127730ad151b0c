"""The one generation loop: jobs (primers, or none) → batches → the sampler → one take each.

`continue`, `generate`, `compare` and the studio all call `run`; it alone decides the
settings a model runs with (`plan`), each job's seed and the batches. Job j of a run uses
seed + j whatever the batching (the sampler gives row i of a batch seed + i, so a batch
is a run of consecutive jobs starting at its own offset): the same jobs and settings give
the same takes, in one batch or many, and a run that skips finished jobs (a resumed
`generate`) makes the rest exactly as the whole run would have.

    from music_transformer.generation import Job, load_model, read_primer, run
    loaded = load_model("piano-transformer")
    primer = read_primer(loaded.tokenizer, "piece.mid", file_time=True)
    for take in run(loaded, [Job(primer)] * 4, SamplingSettings(seconds=20, seed=1)):
        ...  # take.result.tokens; take.settings.seed is 1, 2, 3, 4

A caller streams takes as they finish (each batch's, in job order) and may stop a run: the
`should_stop()` callable is asked before every batch and after every decoding step; once it
says True the run ends without the unfinished batch.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ..checkpoint import LoadedModel
from .loading import model_settings, sample_batch
from .primers import Primer
from .sampler import Generated, ProgressFn
from .settings import SamplingSettings, check_counts

DEFAULT_BATCH_SIZE = 16  # rows per sampler call for `continue` and `generate`


@dataclass(frozen=True)
class Job:
    """One piece to make.

    Attributes:
        primer: what to continue (its `rate` puts seconds on the file's clock); None starts
            from BOS alone (unconditional).
        out: where a writer puts the piece (`sidecars.write_piece`); None when the caller
            writes it its own way.
    """

    primer: Primer | None = None
    out: Path | None = None


@dataclass(frozen=True)
class Take:
    """One finished job.

    Attributes:
        index: the job's position in the run's `jobs`.
        job: the job.
        settings: what this piece ran with — the run's planned settings with its own seed.
        result: what the sampler made (new tokens, stop reason, seconds, window, precision).
        batch: rows computed together with it (recorded in sidecars).
    """

    index: int
    job: Job
    settings: SamplingSettings
    result: Generated
    batch: int

    @property
    def seed(self) -> int:
        return self.settings.seed


class _Stopped(Exception):
    """Raised from the progress callback inside the sampler to end a batch early."""


def plan(loaded: LoadedModel, settings: SamplingSettings | None = None) -> SamplingSettings:
    """The settings a run of `loaded` uses: a seed drawn when none is given, and what the
    settings leave open (window, note limit, temperature) taken from the model. What records
    (sidecars, manifests, reports) show is this; `run` plans again, to the same result."""
    return model_settings(loaded, (settings or SamplingSettings()).with_seed())


def batches(count: int, batch_size: int, skip: Collection[int] = ()) -> list[range]:
    """The batches of a run of `count` jobs: runs of consecutive job indices, cut at every
    multiple of `batch_size` (so a resumed run batches what is left as the whole run did)
    and around skipped jobs."""
    out: list[range] = []
    for start in range(0, count, batch_size):
        todo = [j for j in range(start, min(start + batch_size, count)) if j not in skip]
        while todo:
            n = next((k for k in range(1, len(todo)) if todo[k] != todo[k - 1] + 1), len(todo))
            out.append(range(todo[0], todo[0] + n))
            todo = todo[n:]
    return out


def run(
    loaded: LoadedModel,
    jobs: Sequence[Job],
    settings: SamplingSettings | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressFn | None = None,
    *,
    should_stop: Callable[[], bool] | None = None,
    skip: Collection[int] = (),
) -> Iterator[Take]:
    """Make every job (but those in `skip`) and yield each take as its batch finishes.

    Args:
        loaded: the model (`load_model`).
        jobs: what to make; job j uses seed + j (`plan(loaded, settings).seed`).
        settings: how to sample and how much (default SamplingSettings(); see `plan`).
        batch_size: jobs per sampler call, ≥ 1.
        progress: progress(new_tokens, new_seconds) after every decoding step (its
            `prefill(done, total)` too, when it has one: see `sampler.generate`).
        should_stop: asked before each batch and after each decoding step; True ends the
            run there (the unfinished batch is dropped).
        skip: indices of jobs not to make (finished earlier).

    Raises:
        SamplingError: a bad batch size (before any work).
    """
    check_counts(1, batch_size)
    settings = plan(loaded, settings)
    step = _with_stop(progress, should_stop)
    for rows in batches(len(jobs), batch_size, skip):
        if should_stop is not None and should_stop():
            return
        part = [jobs[j] for j in rows]
        try:
            made = sample_batch(
                loaded,
                [job.primer.ids if job.primer else [loaded.tokenizer.bos_id] for job in part],
                replace(settings, seed=settings.seed + rows.start),
                step,
                [job.primer.rate if job.primer else 1.0 for job in part],
            )
        except _Stopped:
            return
        for j, job, result in zip(rows, part, made):
            yield Take(j, job, replace(settings, seed=settings.seed + j), result, len(part))


def _with_stop(
    progress: ProgressFn | None, should_stop: Callable[[], bool] | None
) -> ProgressFn | None:
    """`progress`, also raising _Stopped after a step (or a prefill chunk) once asked to."""
    if should_stop is None:
        return progress

    def step(tokens: int, seconds: float) -> None:
        if progress is not None:
            progress(tokens, seconds)
        if should_stop():
            raise _Stopped

    def prefill(done: int, total: int) -> None:
        if hasattr(progress, "prefill"):
            progress.prefill(done, total)
        if should_stop():
            raise _Stopped

    step.prefill = prefill  # type: ignore[attr-defined]
    return step
