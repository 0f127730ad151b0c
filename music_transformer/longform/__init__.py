"""The long-form judge: does a continuation stay music over minutes?

    stats.py      the six per-segment statistics (30-s segments after the primer)
    reference.py  reference corpora (MIDI folder or data directory), measured once and cached
    judge.py      percentile bands, the holds rule, judging one file (primer cut from its sidecar)
    run.py        run_judge: many files × references → table, judge.json, pictures
    picture.py    each statistic across the minutes, the real band shaded
    compare.py    the section `compare` adds to its report

The sampler (generation/, the same layer) never imports this package, and this package
imports nothing from generation/: guards that steer sampling are measured by the judge, not
built from it (tests/test_layers.py keeps the two apart).
"""

from .judge import Bands, Judged, Rule, judge_file, make_bands
from .reference import Corpus, JudgeError, load_corpus
from .run import JudgeReport, format_table, run_judge
from .stats import STATS, segment_stats

__all__ = [
    "STATS",
    "Bands",
    "Corpus",
    "JudgeError",
    "JudgeReport",
    "Judged",
    "Rule",
    "format_table",
    "judge_file",
    "load_corpus",
    "make_bands",
    "run_judge",
    "segment_stats",
]
