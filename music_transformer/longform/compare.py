"""The long-form judge's section of a `compare` report: each model's samples judged against
the report's data directory (`--data`), per model a holds rate beside the real one.

Writes longform.json, longform.txt and longform-<model>.png in the report folder and returns
the HTML section (inside a closed <details>, to open after listening, like the metrics: it
names models). Continuations shorter than one segment get a one-line note instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path

from midi_data.errors import MidiReadError
from midi_data.files import atomic_write_json, atomic_write_text

from .judge import Rule, judge_file
from .picture import draw_judged
from .reference import JudgeError
from .run import JudgeReport, format_table, percent, reference_bands, summarize


def judge_section(
    out: Path, data: str | Path | None, samples: Mapping[str, Sequence[tuple[Path, float]]]
) -> str:
    """Judge `samples` (model label → [(MIDI file, primer cut in seconds)]) against `data`.

    Returns the HTML section ("" without `data`). Never raises for a bad reference or sample:
    a comparison is not lost to its judge; the section says what went wrong instead.
    """
    if data is None:
        return ""
    rule = Rule()
    try:
        (bands,) = reference_bands([f"real={data}"], rule).values()
    except (ValueError, OSError) as e:  # JudgeError, DataError: a bad --data for the judge
        return _section(f"<p>No long-form judge: {escape(str(e))}</p>")
    judged, failed, groups = [], [], {}
    for label, files in samples.items():
        mine = []
        for path, cut in files:
            try:
                mine.append(judge_file(path, bands, rule, primer_seconds=cut))
            except (JudgeError, MidiReadError) as e:
                failed.append((str(path), str(e)))
        if mine and any(len(j.values) for j in mine):
            groups[label] = summarize(mine, bands)
            picture = out / f"longform-{_safe(label)}.png"
            draw_judged(mine, bands, picture, [Path(j.path).parent.name for j in mine])
        judged += mine
    report = JudgeReport(judged, {"real": bands}, groups, failed)
    atomic_write_json(out / "longform.json", report.to_dict())
    atomic_write_text(out / "longform.txt", format_table(report, rule) + "\n")
    if not groups:
        return _section(
            f"<p>The continuations are shorter than one {rule.segment:g}-s segment: "
            "generate longer ones (--seconds 180) to judge them.</p>"
        )
    rows = "".join(
        f"<tr><td>{escape(label)}</td><td>{g['holds']}/{g['files']}</td>"
        f"<td>{g['real_holds']}/{g['real_stretches']}</td><td>{g['segments_outside']}/"
        f"{g['segments']}</td><td>{percent(g['two_pitch_in_band'])}</td>"
        f"<td>{g['silences_over_3s']}</td></tr>"
        f'<tr><td colspan="6"><img src="longform-{escape(_safe(label))}.png" '
        f'alt="{escape(label)}"></td></tr>'
        for label, g in groups.items()
    )
    return _section(
        "<table><tr><th>model</th><th>holds</th><th>real music holds</th><th>segments "
        "outside</th><th>two-pitch share in band</th><th>silences &gt; 3 s</th></tr>"
        f"{rows}</table><p class=note>30-s segments after the primer against percentiles "
        "1–99 of every real segment of --data; a stretch holds with ≤ 1 segment outside and "
        "≥ 150 s. Details: longform.txt, longform.json.</p>"
    )


def _safe(label: str) -> str:
    return re.sub(r"[^\w.-]", "_", label)


def _section(inner: str) -> str:
    return (
        '<section id="longform"><details><summary><h2 style="display:inline">Long-form judge '
        f"(open after listening)</h2></summary>{inner}</details></section>"
    )
