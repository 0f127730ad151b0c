"""Score listeners' answers against a report's key: preference rates and sign tests.

An answer says which side of a blind pair the listener preferred: "A", "B" or "none" (no
preference). key.json says which model was behind each side. For every model we count the
pairs it won and lost; "no preference" answers are TIES and are left out of the test, as the
sign test requires. The preference rate is wins / (wins + losses), and the two-sided exact
sign test asks how likely a split at least this uneven would be if listeners had no
preference (wins ~ Binomial(wins + losses, 1/2)).

Each answers file counts once: one given twice (the same path, another path to it, or a copy
under another name) would count one listener twice and make the test lie. Files are the same
when their JSON content is; the page stamps every export with its time to the millisecond, so
two listeners' files always differ, even with identical answers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

KEY_FILE = "key.json"
ANSWERS_FORMAT = "music-transformer/answers"
CHOICES = ("A", "B", "none")


class AnswersError(ValueError):
    """An answers file or report that cannot be scored. The message is one line."""


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test p-value: P(a split at least as uneven | p = 1/2).

    Written out (six lines of math.comb) rather than scipy.stats.binomtest: scipy is not a
    dependency of this project and would be one only for this."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


@dataclass
class Tally:
    wins: int = 0
    losses: int = 0
    ties: int = 0

    @property
    def rate(self) -> float | None:
        decided = self.wins + self.losses
        return self.wins / decided if decided else None

    @property
    def p_value(self) -> float:
        return sign_test(self.wins, self.losses)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "preference_rate": self.rate, "p_value": self.p_value}


@dataclass
class Score:
    """Scored answers: per model and per pair of models (head to head)."""

    models: dict[str, Tally]
    head_to_head: dict[tuple[str, str], Tally]  # (x, y): x's wins, losses and ties against y
    answered: int
    pairs: int
    unknown: list[str] = field(default_factory=list)  # answer ids not in the key
    files: int = 0  # answers files counted
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (ignored, same as)

    def to_dict(self) -> dict[str, Any]:
        return {
            "answered": self.answered,
            "pairs": self.pairs,
            "ties_excluded_from_test": True,
            "models": {m: t.to_dict() for m, t in self.models.items()},
            "head_to_head": [
                {"model": x, "against": y, **t.to_dict()} for (x, y), t in self.head_to_head.items()
            ],
            "unknown_answers": self.unknown,
            "answer_files": self.files,
            "duplicate_files": [{"file": d, "same_as": o} for d, o in self.duplicates],
        }


def _load_json(path: Path, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise AnswersError(f"cannot read {what} {path}: {e.strerror or e}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AnswersError(f"{what} {path} is not valid JSON ({e})") from None


def load_key(report_dir: str | Path) -> dict[str, Any]:
    path = Path(report_dir) / KEY_FILE
    if not path.is_file():
        raise AnswersError(f"{report_dir} is not a comparison report (no {KEY_FILE})")
    key = _load_json(path, "key file")
    if not isinstance(key, dict) or not isinstance(key.get("pairs"), dict):
        raise AnswersError(f"{path} has no 'pairs' mapping")
    return key


def load_answers(path: str | Path, report_id: str) -> dict[str, str]:
    """Pair id → choice from an exported answers file, checked against the report."""
    return _load_answers(path, report_id)[1]


def _load_answers(path: str | Path, report_id: str) -> tuple[str, dict[str, str]]:
    """(canonical JSON of the whole file, its answers): the first identifies the file."""
    data = _load_json(Path(path), "answers file")
    if not isinstance(data, dict) or data.get("format") != ANSWERS_FORMAT:
        raise AnswersError(f"{path} is not an answers file exported by a comparison page")
    if data.get("report_id") != report_id:
        raise AnswersError(
            f"{path} answers report {data.get('report_id')!r}, not this one ({report_id!r})"
        )
    answers = data.get("answers")
    if not isinstance(answers, dict):
        raise AnswersError(f"{path} has no 'answers' mapping")
    for pair, choice in answers.items():
        if choice not in CHOICES:
            raise AnswersError(f"{path}: answer {choice!r} for {pair!r} is not one of A, B, none")
    return json.dumps(data, sort_keys=True, ensure_ascii=False), answers


def score_answers(report_dir: str | Path, answers_paths: Sequence[str | Path]) -> Score:
    """Pool the answers of one or more listeners (files) and score them against key.json.
    A file given twice, or a copy of one, counts once (see the module docstring)."""
    key = load_key(report_dir)
    pairs: dict[str, dict[str, str]] = key["pairs"]
    models = {m: Tally() for m in key.get("models", [])}
    head: dict[tuple[str, str], Tally] = {}
    answered, unknown = 0, []
    if not answers_paths:
        raise AnswersError("give at least one answers file")
    seen: dict[str, str] = {}  # canonical content → the first file that had it
    duplicates: list[tuple[str, str]] = []
    for path in answers_paths:
        content, answers = _load_answers(path, key.get("report_id"))
        if content in seen:
            duplicates.append((str(path), seen[content]))
            continue
        seen[content] = str(path)
        for pair_id, choice in answers.items():
            if pair_id not in pairs:
                unknown.append(pair_id)
                continue
            answered += 1
            a, b = pairs[pair_id]["A"], pairs[pair_id]["B"]
            for x, y, side in ((a, b, "A"), (b, a, "B")):
                tally = models.setdefault(x, Tally())
                versus = head.setdefault((x, y), Tally())
                for t in (tally, versus):
                    if choice == "none":
                        t.ties += 1
                    elif choice == side:
                        t.wins += 1
                    else:
                        t.losses += 1
    return Score(
        models, dict(sorted(head.items())), answered, len(pairs), unknown, len(seen), duplicates
    )


def format_score(score: Score) -> str:
    """The table `music-transformer compare score` prints."""
    plural = "s" if score.files != 1 else ""
    files = f" from {score.files} answers file{plural}" if score.files else ""
    lines = [
        f"{score.answered} answers{files} for {score.pairs} blind pairs. Preference rate = "
        'pairs won / pairs decided; "no preference" answers are ties and are excluded from the '
        "two-sided exact sign test.",
        "",
        f"{'model':<28} {'won':>5} {'lost':>5} {'ties':>5} {'rate':>7} {'p (sign test)':>14}",
    ]

    def row(name: str, t: Tally) -> str:
        rate = f"{100 * t.rate:6.1f}%" if t.rate is not None else f"{'—':>7}"
        return f"{name:<28} {t.wins:>5} {t.losses:>5} {t.ties:>5} {rate} {t.p_value:>14.4g}"

    lines += [row(m, t) for m, t in score.models.items()]
    if len(score.models) > 2:
        lines += ["", "head to head:"]
        lines += [row(f"{x} vs {y}", t) for (x, y), t in score.head_to_head.items() if x < y]
    if score.unknown:
        lines += ["", f"ignored {len(score.unknown)} answers for pairs not in this report"]
    if score.duplicates:
        lines.append("")
    lines += [f"counted once: {d} is the same answers file as {f}" for d, f in score.duplicates]
    return "\n".join(lines)
