"""Window guards: the sampler watches what each row has written and says when it went bad.

For `performance` tokens. Each row's new tokens are read as onsets (NOTE_ON pitch, time from
the TIME_SHIFT sums); every `check_every` seconds of model time the last `window` seconds of
new music are measured and compared with bands that real music stays inside:

* distinct pitches at least `min_distinct` (a loop on two or three pitches falls below);
* share of onsets on the two most used pitches at most `max_top2` (one triad re-struck);
* share of pitch 8-grams already heard earlier in the window at most `max_repeat`;
* no silence (nothing sounding) longer than `max_silence` seconds;
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
    repeated 8-grams and density, and the 99th of the longest silence (its 99.8th is 4.7 s:
    fermatas and song ends; the issue's target is none over 3 s). Real music trips one of
    them in 1.6% of its training windows (classical 3.1%, pop 1.0%) and in 0.7% / 0.6% of the
    valid split's. `bench/guard_bands.py` derives them (bench/results/guard-bands.json).
    """

    min_distinct: int = 5
    max_top2: float = 0.66
    max_repeat: float = 0.56
    max_silence: float = 1.72
    min_density: float = 0.9
    max_density: float = 26.1

    def widened(self, own: WindowStats | None) -> GuardBands:
        """These bands, widened so that the silences and density of `own` (a primer's
        window) fall inside them: a sparse primer, or one with pauses, may go on so. Its pitch
        statistics widen nothing: a primer that repeats one chord is no licence to repeat it
        for minutes."""
        if own is None:
            return self
        return replace(
            self,
            max_silence=max(self.max_silence, own.silence),
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

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> GuardSettings:
        """The settings `record()` wrote (a sidecar's, a studio take's)."""
        values = {f.name: record[f.name] for f in fields(cls) if f.name in record}
        if isinstance(values.get("bands"), dict):
            values["bands"] = GuardBands(**values["bands"])
        return cls(**values)


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
    two most used pitches; repeat: share of pitch 8-grams heard earlier in the window;
    silence: longest stretch with nothing sounding (seconds); density: onsets per second."""

    onsets: int
    distinct: int
    top2: float
    repeat: float
    silence: float
    density: float

    def breach(self, bands: GuardBands) -> str | None:
        """Why this window is outside `bands` (the first reason found), or None."""
        judged = self.onsets >= MIN_ONSETS
        checks = (
            (self.distinct < bands.min_distinct, f"distinct pitches {self.distinct}"),
            (judged and self.top2 > bands.max_top2, f"two-pitch share {self.top2:.2f}"),
            (judged and self.repeat > bands.max_repeat, f"repeated 8-grams {self.repeat:.2f}"),
            (self.silence > bands.max_silence, f"silence {self.silence:.2f} s"),
            (self.density < bands.min_density, f"density {self.density:.2f}/s"),
            (self.density > bands.max_density, f"density {self.density:.2f}/s"),
        )
        return next((why for bad, why in checks if bad), None)


@dataclass
class Tape:
    """What a row has played, read from its tokens (model seconds).

    Attributes:
        onsets: [(seconds, pitch)] in time order.
        silences: [(start, end)] stretches with nothing sounding; the last one's end is None
            while it lasts.
        clock: seconds read so far.
        sounding: pitches sounding now.
    """

    onsets: list = field(default_factory=list)
    silences: list = field(default_factory=list)
    clock: float = 0.0
    sounding: set = field(default_factory=set)

    def mark(self) -> tuple:
        """What `restore` needs to come back here."""
        last = self.silences[-1] if self.silences else None
        return len(self.onsets), len(self.silences), last, self.clock, frozenset(self.sounding)

    def restore(self, mark: tuple) -> None:
        n, k, last, self.clock, sounding = mark
        del self.onsets[n:], self.silences[k:]
        if last is not None:
            self.silences[-1] = last
        self.sounding = set(sounding)

    def longest_silence(self, start: float, end: float) -> float:
        longest = 0.0
        for a, b in reversed(self.silences):
            b = self.clock if b is None else b
            if b < start:
                break
            longest = max(longest, min(b, end) - max(a, start))
        return longest


def window_stats(tape: Tape, start: float, end: float) -> WindowStats:
    """Statistics of what `tape` played from `start` to `end` seconds (onsets found by
    bisection, silences from the newest back: a long history costs nothing)."""
    a = bisect_left(tape.onsets, (start - 1e-9, -1))
    b = bisect_right(tape.onsets, (end + 1e-9, 128))
    inside = sorted(tape.onsets[a:b])  # a chord's notes in pitch order, as written or not
    pitches = [p for _, p in inside]
    counts = Counter(pitches).most_common(2)
    n = len(pitches)
    grams = [tuple(pitches[i : i + NGRAM]) for i in range(n - NGRAM + 1)]
    heard: set[tuple[int, ...]] = set()
    repeats = 0
    for g in grams:
        repeats += g in heard
        heard.add(g)
    return WindowStats(
        onsets=n,
        distinct=len(set(pitches)),
        top2=sum(c for _, c in counts) / n if n else 0.0,
        repeat=repeats / len(grams) if grams else 0.0,
        silence=tape.longest_silence(start, end),
        density=n / max(end - start, 1e-9),
    )


class OnsetReader:
    """Reads `performance` token ids onto a Tape: kind and argument tables of a tokenizer."""

    def __init__(self, tokenizer: Any) -> None:
        self.kind = [int(k) for k in tokenizer.kind]
        self.arg = [int(a) for a in tokenizer.arg]
        self.seconds = [float(s) for s in tokenizer.token_seconds]

    def read(self, ids: Sequence[int], tape: Tape | None = None) -> Tape:
        """`tape` (default: a new one, silent from 0 s) after the tokens `ids`."""
        if tape is None:
            tape = Tape(silences=[(0.0, None)])
        for i in ids:
            tape.clock += self.seconds[i]
            kind = self.kind[i]
            if kind == performance.NOTE_ON:
                tape.onsets.append((tape.clock, self.arg[i]))
                if not tape.sounding and tape.silences and tape.silences[-1][1] is None:
                    tape.silences[-1] = (tape.silences[-1][0], tape.clock)
                tape.sounding.add(self.arg[i])
            elif kind == performance.NOTE_OFF and self.arg[i] in tape.sounding:
                tape.sounding.discard(self.arg[i])
                if not tape.sounding:
                    tape.silences.append((tape.clock, None))
        return tape


@dataclass
class RowWatch:
    """One row's tape since its primer and when it is next checked (model seconds)."""

    bands: GuardBands
    tape: Tape
    next_check: float = 0.0
    quiet_until: float = 0.0  # a window accepted after its attempts ran out: no checks

    def mark(self) -> tuple:
        return self.tape.mark(), self.next_check

    def restore(self, mark: tuple) -> None:
        self.tape.restore(mark[0])
        self.next_check = mark[1]


def start_watch(reader: OnsetReader, primer: Sequence[int], bands: GuardBands, window: float):
    """A row's watch: its tape starts at the cut with what the primer leaves sounding, and
    its bands are widened by the primer's last `window` seconds (`GuardBands.widened`)."""
    played = reader.read(primer)
    own = None
    if played.onsets:
        start = max(0.0, played.clock - window)
        own = window_stats(played, start, max(played.clock, start + 1e-3))
    silent = [] if played.sounding else [(0.0, None)]
    tape = Tape(silences=silent, sounding=set(played.sounding))
    return RowWatch(bands.widened(own), tape)
