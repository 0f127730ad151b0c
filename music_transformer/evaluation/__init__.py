"""Evaluation: NLL in nats per token, overall and by position past the training length.

    nll.py        window_nll over evaluation windows — shared with the trainer's validation
    split_nll.py  evaluate(model, data, split): buckets 0–L, L–2L, 2L–4L, and a table

Windows are cut by `midi_data.eval_windows`, the one cutter for validation and evaluation.
"""

from .nll import Bucket, position_buckets, window_nll
from .split_nll import EvalResult, EvaluationError, evaluate, format_table

__all__ = [
    "Bucket",
    "EvalResult",
    "EvaluationError",
    "evaluate",
    "format_table",
    "position_buckets",
    "window_nll",
]
