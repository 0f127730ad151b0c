"""Listening comparison of several models: audio, piano rolls, a blind A/B page, metrics.

`run_comparison(out_dir, models=[...], primers=[...])` writes the report folder;
`score_answers(report_dir, [answers.json])` scores what listeners exported from its page.
"""

from .report import CompareError, run_comparison
from .score import AnswersError, Score, format_score, score_answers, sign_test

__all__ = [
    "AnswersError",
    "CompareError",
    "Score",
    "format_score",
    "run_comparison",
    "score_answers",
    "sign_test",
]
