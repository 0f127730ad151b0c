"""Training options: one dataclass, readable from a JSON or TOML file and from the command line.

Precedence (lowest first): the defaults below, a config file (`--config FILE`), then the options
given explicitly on the command line. With `--resume`, the run's own `options.json` takes the
place of the defaults, so `train --out RUN --resume --max-steps 2000` continues with every other
setting unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..nn.config import PRESETS
from ..runtime import PRECISIONS, RuntimeChoiceError, check_device


class TrainError(ValueError):
    """A training run that cannot start (bad option, bad run directory, ...). One line."""


SCHEDULES = ("inverse-sqrt", "cosine", "constant")
ARCHS = ("transformer", "transformer-absolute", "lstm")


@dataclass
class TrainOptions:
    """Everything a training run needs. Steps are optimizer steps; lengths are in tokens.

    The global batch of one optimizer step is `batch_size × world_size × accumulation` windows
    of `seq_len + 1` tokens (world_size = number of torchrun processes, 1 without torchrun).
    """

    data_dir: str = ""  # prepared data directory (`music-transformer prepare`)
    out_dir: str = ""  # RUN_DIR: checkpoints, metrics.jsonl, options.json
    init: str = ""  # fine-tune: start from this model (bundled name or checkpoint/run dir)
    arch: str = "transformer"  # transformer | transformer-absolute | lstm
    preset: str = "small"  # tiny | small | paper
    model: dict[str, Any] = field(default_factory=dict)  # ModelConfig/LSTMConfig overrides
    dropout: float | None = None  # overrides the preset's dropout when set
    max_steps: int = 20000  # optimizer steps in total (a resumed run continues up to this)
    seq_len: int = 512  # L: tokens of context per training window
    batch_size: int = 8  # windows per process per micro-batch
    accumulation: int = 1  # micro-batches per optimizer step (gradient accumulation)
    lr: float = 5e-4  # peak learning rate, reached at the end of warm-up
    schedule: str = "inverse-sqrt"  # after warm-up: inverse-sqrt (paper), cosine, constant
    warmup_steps: int | None = None  # linear warm-up to `lr`; None: min(500, max_steps // 10)
    min_lr_ratio: float = 0.1  # cosine decays to lr × this at max_steps
    step_offset: int = 0  # step s trains as step s + this would: its rate (after a fresh
    # warm-up), data windows and dropout. A warm start (`init`) from a model trained N steps
    # continues that run with N
    cooldown_steps: int = 0  # the last N steps before max_steps take the rate down to ~0
    weight_decay: float = 0.01  # AdamW decoupled decay (not on biases, norms, embeddings)
    beta1: float = 0.9
    beta2: float = 0.98
    grad_clip: float = 1.0  # max global gradient L2 norm; 0 turns clipping off
    augment: bool = True  # transpose / time-stretch training windows on the fly
    eval_every: int = 500  # steps between validation passes (0: only at the end)
    eval_batches: int = 50  # at most this many validation batches per pass (0: all)
    save_every: int = 500  # steps between checkpoints (and at the end, always)
    keep_last: int = 3  # step checkpoints kept under RUN_DIR/checkpoints/
    early_stop: int = 0  # stop after this many validations without improvement (0: never)
    log_every: int = 10  # steps between metrics.jsonl lines
    seed: int = 0  # model init, dropout and data windows
    device: str = "auto"  # auto (cuda if available) | cpu | cuda | cuda:N
    precision: str = "auto"  # auto (bf16 where fast) | fp32 | bf16
    quiet: bool = False  # no progress bar
    resume: bool = False  # continue RUN_DIR/last exactly where it stopped
    tensorboard: bool = True  # write TensorBoard events when tensorboard is installed

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise TrainError naming the first bad option."""
        for f in dataclasses.fields(self):
            _check_type(f.name, getattr(self, f.name), f.default)
        positive = ("max_steps", "seq_len", "batch_size", "accumulation", "keep_last", "log_every")
        for name in positive:
            if int(getattr(self, name)) <= 0:
                raise TrainError(f"option {name} must be positive, not {getattr(self, name)}")
        at_least_zero = ("eval_every", "eval_batches", "save_every", "early_stop")
        for name in (*at_least_zero, "step_offset", "cooldown_steps"):
            if int(getattr(self, name)) < 0:
                raise TrainError(f"option {name} must be ≥ 0, not {getattr(self, name)}")
        w = self.warmup_steps
        if w is not None and (isinstance(w, bool) or not isinstance(w, int) or w < 0):
            raise TrainError(f"option warmup_steps must be a whole number ≥ 0, not {w!r}")
        if self.seq_len < 2:  # a window of one token has no next token to learn from
            raise TrainError(f"option seq_len must be ≥ 2, not {self.seq_len}")
        if not 0 <= self.seed < 2**63:
            raise TrainError(f"option seed must be in 0 … {2**63 - 1}, not {self.seed}")
        if not self.lr > 0:
            raise TrainError(f"option lr must be positive, not {self.lr}")
        choices = {
            "schedule": SCHEDULES,
            "precision": PRECISIONS,
            "arch": ARCHS,
            "preset": tuple(PRESETS["transformer"]),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise TrainError(
                    f"option {name} must be one of {', '.join(allowed)}, "
                    f"not {getattr(self, name)!r}"
                )
        try:
            check_device(self.device)
        except RuntimeChoiceError as e:
            raise TrainError(f"option device: {e}") from None
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise TrainError(f"option dropout must be in [0, 1), not {self.dropout}")
        if not isinstance(self.model, dict):
            raise TrainError("option model must be a table of model config overrides")

    @property
    def warmup(self) -> int:
        """Warm-up steps in effect: the option, else 500 or a tenth of the run if shorter
        (a 200-step run with 500 warm-up steps would never reach its learning rate)."""
        if self.warmup_steps is not None:
            return self.warmup_steps
        return min(500, self.max_steps // 10)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_type(name: str, value: Any, default: Any) -> None:
    """Values from JSON/TOML files must have the option's type (an int is a fine float)."""
    if value is None or default is None or default is dataclasses.MISSING:
        return
    kind = type(default)
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        raise TrainError(f"option {name} must be of type {kind.__name__}, not {value!r}")


FIELDS = {f.name for f in dataclasses.fields(TrainOptions)}


def options_from_dict(values: dict[str, Any], source: str = "options") -> dict[str, Any]:
    """Check keys against TrainOptions; unknown keys are an error naming the key and `source`."""
    unknown = sorted(set(values) - FIELDS)
    if unknown:
        raise TrainError(f"unknown key {unknown[0]!r} in {source}")
    return dict(values)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Options from a JSON (`.json`) or TOML (any other suffix) file; keys are option names
    (`seq_len`, `lr`, ...) plus an optional `model` table of model config overrides."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise TrainError(f"cannot read config file {path}: {e.strerror or e}") from None
    try:
        values = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise TrainError(f"config file {path} is not valid: {str(e).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise TrainError(f"config file {path} must hold a table of options")
    return options_from_dict(values, f"config file {path}")


def build_options(
    explicit: dict[str, Any],
    config_file: str | Path | None = None,
    base: dict[str, Any] | None = None,
) -> TrainOptions:
    """Merge option layers: `base` (e.g. a resumed run's options.json) < file < `explicit`."""
    merged: dict[str, Any] = dict(base or {})
    chosen = options_from_dict(explicit, "command-line options")  # what the user asked for
    if config_file is not None:
        chosen = {**read_config_file(config_file), **chosen}
    merged.update(chosen)
    try:
        options = TrainOptions(**merged)
    except (TypeError, ValueError) as e:
        if isinstance(e, TrainError):
            raise
        raise TrainError(f"bad training options: {e}") from None
    if options.init and not options.resume:
        from .model_choice import init_architecture  # reads the model: only when asked

        options = dataclasses.replace(options, arch=init_architecture(options, set(chosen)))
    return options


def load_run_options(run_dir: str | Path) -> dict[str, Any]:
    """The options a run was started with (RUN_DIR/options.json), or {} when it has none."""
    path = Path(run_dir) / "options.json"
    if not path.is_file():
        return {}
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise TrainError(f"cannot read {path}: {e}") from None
    return options_from_dict(values, str(path))


def default(name: str) -> Any:
    """The default of one TrainOptions field (for command-line options)."""
    f = next(f for f in dataclasses.fields(TrainOptions) if f.name == name)
    return f.default_factory() if f.default is dataclasses.MISSING else f.default
