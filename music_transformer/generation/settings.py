"""How to sample and how much: one frozen dataclass, checked once, where it is built.

The command-line options of `continue`, `generate` and `compare` take their defaults from it,
and the sampler trusts it (it does not check again).
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, fields, replace
from typing import Any

from ..runtime import RuntimeChoiceError, check_precision
from .filters import SamplingError, check_min_p, check_top_k, check_top_p
from .guards import GuardSettings

DEFAULT_SECONDS = 30.0
DEFAULT_TEMPERATURE = 1.0  # for models whose card recommends none
# With --seconds only, a token ceiling still stops a model that never advances time;
# expressive piano runs ~33 performance tokens per second of music (a 349-s MAESTRO
# performance: 11,454 tokens), dense passages ~3× that.
MAX_TOKENS_PER_SECOND = 150
SEED_LIMIT = 2**63  # torch generators take seeds below this
# Pieces one run may write: each is a file and a sidecar; past this a folder is unusable (and
# the job list alone of --num-samples 10**20 would never be built)
MAX_PIECES = 100_000


@dataclass(frozen=True)
class SamplingSettings:
    """How to sample and how much. Checked on construction (SamplingError: a ValueError).

    Attributes:
        temperature: softmax temperature, ≥ 0; 0 is greedy. None: the model's recommended
            temperature (its card's, when it has one), else DEFAULT_TEMPERATURE.
        top_k: keep only the k most likely tokens (None: off).
        top_p: nucleus mass in (0, 1] (None: off).
        seed: base seed; row i of a batch uses seed + i. None draws one (`with_seed`).
        seconds: stop after this many seconds of new music (None: no limit in seconds).
        tokens: stop after this many new tokens (None: a ceiling derived from `seconds`).
        primer_seconds: use only the first this-many seconds of each primer (None: all).
        window: context tokens the model attends to (None: the model's training length).
        precision: "auto" (bf16 where it is faster), "fp32" or "bf16".
        time_limit: stop a batch after this many seconds of wall-clock time (None: no limit).
        grammar: keep the tokens well-formed while sampling (`generation.grammar`); with
            `seconds`, end at a musical point between 0.9 and 1.1 × seconds.
        max_note_seconds: no note sounds longer (None: the model's own limit, from its
            training data, when it records one).
        primer_note_limit: for `performance` tokens, also keep each row's notes within twice
            its primer's longest note, at least 2 s (`grammar.PRIMER_NOTE_FACTOR`). None: on
            when max_note_seconds is not given, off when it is.
        allow_early_end: let the model end a piece (EOS) before the length asked for.
        allow_voice_crossing: four-part grids (`jsb`) may put a lower voice above a higher one.
        no_repeat_ngram: never play the same n tokens twice in a row's history (None: off).
        guard: watch each row's last seconds and backtrack when they go bad
            (`generation.guards`, `generation.rewind`; performance tokens): GuardSettings
            (True: the default GuardSettings()), or False: off. None: as the model's card
            recommends (`card.sampling.guard`), else off.
        min_p: keep only tokens at least this fraction as likely as the likeliest (None: off).
        entropy_floor: nats; a row whose next-token entropy at `temperature` is below it
            samples warmer, up to 2× (`picker`), None: off.
        sink_tokens: when the context slides, keep each row's first this-many context tokens
            ("attention sinks", `KVCache.slide`; relative Transformers); 0: off. None: as
            the model's card recommends (`card.sampling.sink_tokens`), else off.
    """

    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    seconds: float | None = None
    tokens: int | None = None
    primer_seconds: float | None = None
    window: int | None = None
    precision: str = "auto"
    time_limit: float | None = None
    grammar: bool = True
    max_note_seconds: float | None = None
    primer_note_limit: bool | None = None
    allow_early_end: bool = False
    allow_voice_crossing: bool = False
    no_repeat_ngram: int | None = None
    guard: GuardSettings | bool | None = None
    min_p: float | None = None
    entropy_floor: float | None = None
    sink_tokens: int | None = None

    def __post_init__(self) -> None:
        t = self.temperature
        if t is not None:
            if isinstance(t, bool) or not isinstance(t, int | float):
                raise SamplingError(f"temperature must be a number ≥ 0, got {t!r}")
            if not t >= 0.0 or t == math.inf:
                raise SamplingError(f"temperature must be a finite number ≥ 0, got {t!r}")
        check_top_k(self.top_k)
        check_top_p(self.top_p)
        check_min_p(self.min_p)
        floor = self.entropy_floor
        if floor is not None and not (isinstance(floor, int | float) and 0 < floor < math.inf):
            raise SamplingError(f"entropy_floor must be a number > 0 (nats), got {floor!r}")
        if self.guard is True:
            object.__setattr__(self, "guard", GuardSettings())
        if not (self.guard is None or self.guard is False or isinstance(self.guard, GuardSettings)):
            raise SamplingError(
                f"guard must be GuardSettings, true, false or None, got {self.guard!r}"
            )
        if self.seconds is None and self.tokens is None:
            object.__setattr__(self, "seconds", DEFAULT_SECONDS)
        for name in ("seconds", "primer_seconds", "time_limit", "max_note_seconds"):
            value = getattr(self, name)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if value is not None and not (number and 0 < value < math.inf):
                raise SamplingError(f"{name} must be a number > 0, got {value!r}")
        for name in ("tokens", "window", "seed", "no_repeat_ngram", "sink_tokens"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise SamplingError(f"{name} must be a whole number, got {value!r}")
        if self.tokens is not None and self.tokens < 1:
            raise SamplingError(f"tokens must be ≥ 1, got {self.tokens}")
        if self.no_repeat_ngram is not None and self.no_repeat_ngram < 2:
            raise SamplingError(f"no_repeat_ngram must be ≥ 2, got {self.no_repeat_ngram}")
        if self.primer_note_limit is None:  # resolved once: later replace() calls keep it
            object.__setattr__(self, "primer_note_limit", self.max_note_seconds is None)
        for name in ("grammar", "primer_note_limit", "allow_early_end", "allow_voice_crossing"):
            if not isinstance(getattr(self, name), bool):
                raise SamplingError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.window is not None and self.window < 2:
            raise SamplingError(f"window must be ≥ 2, got {self.window}")
        if self.sink_tokens is not None and self.sink_tokens < 0:
            raise SamplingError(f"sink_tokens must be ≥ 0 (0: off), got {self.sink_tokens}")
        if self.seed is not None and not 0 <= self.seed < SEED_LIMIT:
            raise SamplingError(f"seed must be in 0 … {SEED_LIMIT - 1}, got {self.seed}")
        try:
            check_precision(self.precision)
        except RuntimeChoiceError as e:  # the same message as training's, as a SamplingError
            raise SamplingError(str(e)) from None

    @property
    def max_new_tokens(self) -> int:
        """The token budget of one row: `tokens`, else a ceiling from `seconds`."""
        if self.tokens is not None:
            return self.tokens
        return max(64, math.ceil(self.seconds * MAX_TOKENS_PER_SECOND))

    @property
    def guarded(self) -> GuardSettings | None:
        """The guard's settings when the guard is on, else None (off, or not yet resolved
        from a model's card: `loading.model_settings` does that)."""
        return self.guard if isinstance(self.guard, GuardSettings) else None

    @property
    def temperature_used(self) -> float:
        """The temperature sampling uses: `temperature`, else DEFAULT_TEMPERATURE."""
        return DEFAULT_TEMPERATURE if self.temperature is None else float(self.temperature)

    def with_seed(self) -> SamplingSettings:
        """These settings with a concrete seed (drawn now if none was given)."""
        if self.seed is not None:
            return self
        return replace(self, seed=secrets.randbelow(2**31))

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> SamplingSettings:
        """The settings `record()` wrote (keys it does not know, like a sidecar's
        max_new_tokens, are left out)."""
        values = {f.name: record[f.name] for f in fields(cls) if f.name in record}
        if isinstance(values.get("guard"), dict):
            values["guard"] = GuardSettings.from_record(values["guard"])
        return cls(**values)

    def record(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict, for sidecars and manifests."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if isinstance(self.guard, GuardSettings):
            out["guard"] = self.guard.record()
        return out


def default(name: str) -> Any:
    """The default of one SamplingSettings field (for command-line options)."""
    return next(f.default for f in fields(SamplingSettings) if f.name == name)


def check_counts(num_samples: int, batch_size: int) -> None:
    """num_samples and batch_size must be whole numbers ≥ 1, num_samples at most MAX_PIECES
    (SamplingError otherwise)."""
    for name, value in (("num_samples", num_samples), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SamplingError(f"{name} must be a whole number ≥ 1, got {value!r}")
    if num_samples > MAX_PIECES:
        raise SamplingError(
            f"num_samples {num_samples:,} is more than one run writes (at most {MAX_PIECES:,}); "
            "run several"
        )
