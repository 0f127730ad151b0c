"""`compare score` counts each answers file once: the same path twice, another path to the
same file, or a copy under another name is one listener; two listeners who happen to give the
same answers (exported at different times) are two."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from music_transformer.comparison.score import ANSWERS_FORMAT, format_score, score_answers
from tests.helpers import cli

PAIRS = {f"p{i:02d}-1": {"A": "mt", "B": "rnn"} for i in range(1, 7)}


@pytest.fixture
def report(tmp_path: Path) -> Path:
    key = {"report_id": "r1", "models": ["mt", "rnn"], "pairs": PAIRS}
    (tmp_path / "key.json").write_text(json.dumps(key))
    return tmp_path


def answers(folder: Path, name: str, exported: str) -> Path:
    """A listener preferring `mt` (side A) everywhere, as the page exports it."""
    doc = {"format": ANSWERS_FORMAT, "report_id": "r1", "answers": dict.fromkeys(PAIRS, "A"),
           "exported": exported}  # fmt: skip
    path = folder / name
    path.write_text(json.dumps(doc, indent=2))
    return path


def test_a_file_given_twice_counts_once(report: Path, tmp_path: Path) -> None:
    one = answers(tmp_path, "alice.json", "2026-01-01T10:00:00.000Z")
    copy = tmp_path / "alice-copy.json"
    copy.write_text(json.dumps(json.loads(one.read_text())))  # same content, other layout
    (tmp_path / "link.json").symlink_to(one)
    score = score_answers(
        report, [one, one, copy, tmp_path / "link.json", f"{tmp_path}/./alice.json"]
    )
    assert score.files == 1 and score.answered == len(PAIRS)
    assert (score.models["mt"].wins, score.models["rnn"].losses) == (6, 6)
    assert [d for d, _ in score.duplicates] == [
        str(one),
        str(copy),
        str(tmp_path / "link.json"),
        f"{tmp_path}/./alice.json",
    ]
    assert all(first == str(one) for _, first in score.duplicates)
    text = format_score(score)
    assert f"counted once: {copy} is the same answers file as {one}" in text


def test_two_listeners_with_the_same_answers_count_twice(report: Path, tmp_path: Path) -> None:
    alice = answers(tmp_path, "alice.json", "2026-01-01T10:00:00.000Z")
    bob = answers(tmp_path, "bob.json", "2026-01-01T10:05:00.123Z")
    score = score_answers(report, [alice, bob])
    assert score.files == 2 and score.answered == 2 * len(PAIRS) and not score.duplicates
    assert score.models["mt"].wins == 12


def test_cli_reports_the_duplicate(report: Path, tmp_path: Path) -> None:
    one = answers(tmp_path, "alice.json", "2026-01-01T10:00:00.000Z")
    result = cli(*["compare", "score", str(report), str(one), str(one)])
    assert result.exit_code == 0, result.output
    assert "6 answers from 1 answers file for" in result.output
    assert "counted once" in result.output
    result = cli(*["compare", "score", str(report), str(one), str(one), "--json"])
    scored = json.loads(result.output)
    assert scored["answer_files"] == 1
    assert scored["duplicate_files"] == [{"file": str(one), "same_as": str(one)}]
    assert scored["models"]["mt"]["wins"] == 6
