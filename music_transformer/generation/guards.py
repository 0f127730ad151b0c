"""Window guards: the sampler watches what each row has written and says when it went bad.

For `performance` tokens. Each row's new tokens are read as onsets (NOTE_ON pitch, time from
the TIME_SHIFT sums); every `check_every` seconds of model time the last `window` seconds of
new music are measured and compared with bands that real music stays inside:

* distinct pitches at least `min_distinct` (a loop on two or three pitches falls below);
* share of onsets on the two most used pitches at most `max_top2` (one triad re-struck);
* share of pitch 8-grams already heard earlier in the window at most `max_repeat`;
* no stretch without an onset longer than `max_gap` seconds;
* onsets per second between `min_density` and `max_density`.

A row's primer widens its own bands: a silence or a density the primer itself has is never
called bad (`GuardBands.widened`); its pitch statistics do not. The backtracking itself is
`generation.rewind`'s.

Written for the sampler alone: nothing here comes from (or may be imported by) the long-form
judge, which measures the sampler from outside.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from itertools import pairwise
from typing import Any

from midi_data.presets import performance

NGRAM = 8  # pitch n-gram length of the repeat measure
MIN_ONSETS = 12  # fewer onsets in a window: pitch shares and repeats are not judged


@dataclass(frozen=True)
class GuardBands:
    """Limits one window of `window` seconds must stay within (see the module docstring).

    Defaults: the training split of POP909 and piano-midi.de as prepared for the piano models
    (1,040 pieces), every 10-s window at 2-s steps (124,577 windows): the 0.2nd percentile of
    distinct pitches and density, the 99.8th of the two-pitch share (windows of ≥ 12 onsets),
    repeated 8-grams and density, and the 99th of the longest onset-free stretch (its 99.8th
    is 7 s: fermatas and song ends). Real music trips one of them in 1.6% of its training
    windows (classical 2.7%, pop 1.1%) and 1.2% / 0.4% of the valid split's.
    `bench/guard_bands.py` derives them; bench/results/guard-bands.json has the tables.
    """

    min_distinct: int = 5
    max_top2: float = 0.66
    max_repeat: float = 0.56
    max_gap: float = 3.6
    min_density: float = 0.9
    max_density: float = 26.1

    def widened(self, own: WindowStats | None) -> GuardBands:
        """These bands, widened so that the gaps and density of `own` (a primer's window)
        fall inside them: a sparse primer may go on sparsely. Its pitch statistics widen
        nothing: a primer that repeats one chord is no licence to repeat it for minutes."""
        if own is None:
            return self
        return replace(
            self,
            max_gap=max(self.max_gap, own.gap),
            min_density=min(self.min_density, own.density),
            max_density=max(self.max_density, own.density),
        )


@dataclass(frozen=True)
class GuardSettings:
    """How the sampler guards each row.

    Attributes:
        window: seconds of model time measured at each check.
        check_every: seconds of model time between checks.
        rewind: seconds a backtrack goes back on its first attempt at one place; attempt k
            goes back k × rewind (never into the primer).
        max_attempts: backtracks at one place before its window is accepted as it is.
        max_backtracks: backtracks per row in all.
        bands: the limits (None: the model card's `guard` bands, else GuardBands()).
    """

    window: float = 10.0
    check_every: float = 1.0
    rewind: float = 4.0
    max_attempts: int = 3
    max_backtracks: int = 24
    bands: GuardBands | None = None

    def __post_init__(self) -> None:
        for name in ("window", "check_every", "rewind"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and value > 0):
                raise ValueError(f"guard {name} must be a number > 0, got {value!r}")
        for name in ("max_attempts", "max_backtracks"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"guard {name} must be a whole number ≥ 0, got {value!r}")

    def record(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "bands"}
        out["bands"] = asdict(self.bands) if self.bands is not None else None
        return out


# The guard when none is chosen (SamplingSettings, the CLI's --guard/--no-guard): off until
# the long-form measurements show it raises the holds rate without hurting the pianist ones.
DEFAULT_GUARD: GuardSettings | None = None


def bands_from_card(meta: dict[str, Any]) -> GuardBands | None:
    """The bands a model's config.json records under card.guard (measured on its own
    training data), or None when it records none."""
    found = (meta.get("card") or {}).get("guard")
    if not isinstance(found, dict):
        return None
    known = {f.name for f in fields(GuardBands)}
    return GuardBands(**{k: v for k, v in found.items() if k in known})


@dataclass(frozen=True)
class WindowStats:
    """The statistics of one window. onsets: count; distinct: pitches; top2: share of the
    two most used pitches; repeat: share of pitch 8-grams heard earlier in the window; gap:
    longest stretch without an onset (seconds, window edges included); density: onsets/s."""

    onsets: int
    distinct: int
    top2: float
    repeat: float
    gap: float
    density: float

    def breach(self, bands: GuardBands) -> str | None:
        """Why this window is outside `bands` (the first reason found), or None."""
        judged = self.onsets >= MIN_ONSETS
        checks = (
            (self.distinct < bands.min_distinct, f"distinct pitches {self.distinct}"),
            (judged and self.top2 > bands.max_top2, f"two-pitch share {self.top2:.2f}"),
            (judged and self.repeat > bands.max_repeat, f"repeated 8-grams {self.repeat:.2f}"),
            (self.gap > bands.max_gap, f"no onset for {self.gap:.2f} s"),
            (self.density < bands.min_density, f"density {self.density:.2f}/s"),
            (self.density > bands.max_density, f"density {self.density:.2f}/s"),
        )
        return next((why for bad, why in checks if bad), None)


def window_stats(onsets: Sequence[tuple[float, int]], start: float, end: float) -> WindowStats:
    """Statistics of the onsets (time in seconds, pitch) with start <= time <= end; `onsets`
    in time order (found by bisection, so a long history costs nothing)."""
    a = bisect_left(onsets, (start - 1e-9, -1))
    b = bisect_right(onsets, (end + 1e-9, 128))
    inside = list(onsets[a:b])
    inside.sort()  # a chord's notes in pitch order, whatever order they were written in
    pitches = [p for _, p in inside]
    counts = Counter(pitches).most_common(2)
    n = len(pitches)
    grams = [tuple(pitches[i : i + NGRAM]) for i in range(n - NGRAM + 1)]
    heard: set[tuple[int, ...]] = set()
    repeats = 0
    for g in grams:
        repeats += g in heard
        heard.add(g)
    times = [start] + [t for t, _ in inside] + [end]
    return WindowStats(
        onsets=n,
        distinct=len(set(pitches)),
        top2=sum(c for _, c in counts) / n if n else 0.0,
        repeat=repeats / len(grams) if grams else 0.0,
        gap=max(b - a for a, b in pairwise(times)),
        density=n / max(end - start, 1e-9),
    )


class OnsetReader:
    """Reads `performance` token ids as onsets: kind and argument tables of a tokenizer."""

    def __init__(self, tokenizer: Any) -> None:
        self.kind = [int(k) for k in tokenizer.kind]
        self.arg = [int(a) for a in tokenizer.arg]
        self.seconds = [float(s) for s in tokenizer.token_seconds]

    def onsets(self, ids: Sequence[int], clock: float = 0.0) -> tuple[list, float]:
        """(onsets [(seconds, pitch)], clock after the tokens), starting at `clock`."""
        out = []
        for i in ids:
            clock += self.seconds[i]
            if self.kind[i] == performance.NOTE_ON:
                out.append((clock, self.arg[i]))
        return out, clock


@dataclass
class RowWatch:
    """One row's onsets since its primer and when it is next checked (model seconds)."""

    bands: GuardBands
    onsets: list = field(default_factory=list)
    clock: float = 0.0
    next_check: float = 0.0
    quiet_until: float = 0.0  # a window accepted after its attempts ran out: no checks

    def mark(self) -> tuple[int, float, float]:
        """What `restore` needs to come back here."""
        return len(self.onsets), self.clock, self.next_check

    def restore(self, mark: tuple[int, float, float]) -> None:
        n, self.clock, self.next_check = mark
        del self.onsets[n:]


def primer_stats(reader: OnsetReader, primer: Sequence[int], window: float) -> WindowStats | None:
    """The statistics of a primer's last `window` seconds (all of it when shorter; None
    without a single onset)."""
    onsets, clock = reader.onsets(primer)
    if not onsets:
        return None
    start = max(0.0, clock - window)
    return window_stats(onsets, start, max(clock, start + 1e-3))
