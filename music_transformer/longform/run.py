"""`run_judge`: judge generated files against one or more reference corpora; table, JSON, PNG.

With several references (e.g. `classical=DIR pop=DIR`), each file is judged against one:
the first `--assign NAME=PATTERN` whose shell pattern matches the file's path or its sidecar's
primer path (a folder matches everything under it), else the reference whose NAME is a folder
(or file-name prefix) in one of those paths. With one reference, every file uses it.
"""

from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from midi_data.corpus import MIDI_SUFFIXES
from midi_data.errors import MidiReadError
from midi_data.files import atomic_write_json, atomic_write_text

from .judge import SILENCE_FLAG_SECONDS, Bands, Judged, Rule, _read_sidecar, judge_file, make_bands
from .picture import draw_judged
from .reference import JudgeError, load_corpus, parse_reference
from .stats import STATS

TWO_PITCH = STATS.index("two_pitch_share")
SILENCE = STATS.index("longest_silence")


@dataclass
class JudgeReport:
    """What `run_judge` found. groups: name → summary dict; failed: [(file, reason)]."""

    judged: list[Judged]
    bands: dict[str, Bands]
    groups: dict[str, dict[str, Any]]
    failed: list[tuple[str, str]] = field(default_factory=list)
    pictures: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": self.groups,
            "files": [j.to_dict() for j in self.judged],
            "failed": [{"path": p, "reason": r} for p, r in self.failed],
            "bands": {n: _bands_dict(b) for n, b in self.bands.items()},
            "stats": list(STATS),
        }


def _bands_dict(b: Bands) -> dict[str, Any]:
    return {
        "segments": b.segments,
        "real_holds": b.real_holds,
        "real_stretches": b.real_stretches,
        **{s: [round(float(lo), 4), round(float(hi), 4)] for s, lo, hi in zip(STATS, b.lo, b.hi)},
    }


def expand_files(inputs: list[str | Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """MIDI files of the inputs (folders searched recursively) and the inputs that are missing."""
    files, failed = [], []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES)
            files += found
            if not found:
                failed.append((str(item), "no MIDI files in this folder"))
        elif item.is_file():
            files.append(item)
        else:
            failed.append((str(item), "does not exist"))
    return files, failed


def _paths_of(path: Path) -> list[str]:
    record = _read_sidecar(path)
    primer = (record or {}).get("primer") or {}
    return [str(path)] + ([str(primer["path"])] if primer.get("path") else [])


def assign_reference(path: Path, names: list[str], assign: list[tuple[str, str]]) -> str:
    """Which reference judges `path` (see the module docstring). Raises JudgeError."""
    if len(names) == 1:
        return names[0]
    candidates = _paths_of(path)
    for name, pattern in assign:
        for c in candidates:
            if fnmatch.fnmatch(c, pattern) or PurePath(c).is_relative_to(pattern.rstrip("/")):
                return name
    for c in candidates:
        parts = [p.lower() for p in PurePath(c).parts]
        for name in names:
            if name.lower() in parts[:-1] or parts[-1].startswith(name.lower()):
                return name
    raise JudgeError(f"{path}: which reference ({', '.join(names)})? pass --assign NAME=PATTERN")


def summarize(judged: list[Judged], bands: Bands) -> dict[str, Any]:
    """Holds rate beside the real one, the two-pitch share in band, silences over 3 s."""
    values = np.concatenate([j.values for j in judged]) if judged else np.zeros((0, len(STATS)))
    two = values[:, TWO_PITCH]
    measured = ~np.isnan(two)
    in_band = measured & (two >= bands.lo[TWO_PITCH]) & (two <= bands.hi[TWO_PITCH])
    long_quiet = [j for j in judged for v in j.values[:, SILENCE] if v > SILENCE_FLAG_SECONDS]
    return {
        "reference": bands.name,
        "files": len(judged),
        "holds": sum(j.holds for j in judged),
        "holds_rate": _rate(sum(j.holds for j in judged), len(judged)),
        "real_holds": bands.real_holds,
        "real_stretches": bands.real_stretches,
        "real_holds_rate": _rate(bands.real_holds, bands.real_stretches),
        "segments": len(values),
        "segments_outside": int(sum(j.outside.any(axis=1).sum() for j in judged)),
        "two_pitch_in_band": _rate(int(in_band.sum()), int(measured.sum())),
        "silences_over_3s": len(long_quiet),
        "silences_over_3s_primer_has_one": sum(
            j.primer_silence > SILENCE_FLAG_SECONDS for j in long_quiet
        ),
    }


def _rate(n: int, d: int) -> float | None:
    return round(n / d, 4) if d else None


def percent(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


def format_table(report: JudgeReport, rule: Rule) -> str:
    """Per file: segments outside / holds; per group: holds rate vs the real one."""
    width = max([len(j.path) for j in report.judged] + [4])
    rw = max([len(j.reference) for j in report.judged] + [9])
    head = f"{'file':<{width}}  {'reference':<{rw}}  after  segs  outside  holds  outside on"
    lines = [head]
    for j in report.judged:
        counts = j.outside.sum(axis=0)
        why = ", ".join(f"{s}×{c}" for s, c in zip(STATS, counts) if c) or "-"
        lines.append(
            f"{j.path:<{width}}  {j.reference:<{rw}} {j.seconds:>5.0f}s {len(j.values):>5}  "
            f"{int(j.outside.any(axis=1).sum()):>7}  {'yes' if j.holds else 'no':<5}  {why}"
        )
    lines.append(
        f"(segments of {rule.segment:g} s after the primer; a stretch of the first "
        f"{rule.stretch_seconds:g} s holds with ≤ {rule.max_outside} outside and ≥ "
        f"{rule.min_seconds:g} s; bands: percentiles {rule.low:g}–{rule.high:g})"
    )
    lines += [f"note: {j.path}: {n}" for j in report.judged for n in j.notes]
    for name, g in report.groups.items():
        lines.append(
            f"{name}: holds {g['holds']}/{g['files']} ({percent(g['holds_rate'])}); real "
            f"music {g['real_holds']}/{g['real_stretches']} ({percent(g['real_holds_rate'])})"
            f" | two-pitch share in band: {percent(g['two_pitch_in_band'])} of "
            f"{g['segments']} segments | silences > 3 s: {g['silences_over_3s']} "
            f"({g['silences_over_3s_primer_has_one']} where the primer has one)"
        )
    return "\n".join(lines)


def reference_bands(
    references: list[str], rule: Rule, workers: int | None = None
) -> dict[str, Bands]:
    """name → Bands for each "NAME=PATH" reference (measured once per corpus, then cached)."""
    names = [parse_reference(r)[0] for r in references]
    if len(set(names)) != len(names):
        raise JudgeError(f"--reference names must differ: {', '.join(names)}")
    corpora = [load_corpus(r, segment=rule.segment, workers=workers) for r in references]
    return {c.name: make_bands(c, rule) for c in corpora}


def run_judge(
    inputs: list[str | Path],
    references: list[str],
    *,
    assign: list[str] = (),
    rule: Rule | None = None,
    primer_seconds: float | None = None,
    out: str | Path | None = None,
    workers: int | None = None,
) -> JudgeReport:
    """Judge every MIDI file of `inputs` (files or folders).

    Args:
        references: "NAME=PATH" or "PATH" (MIDI folder or data directory[@SOURCE]).
        assign: "NAME=PATTERN" rules for several references.
        primer_seconds: the cut of files without a JSON sidecar.
        out: folder for judge.json, judge.txt and judge-<reference>.png (optional).

    Raises:
        JudgeError: no reference, a bad reference, or no file could be judged.
    """
    started = time.time()
    rule = rule or Rule()
    if not references:
        raise JudgeError("no --reference given (a MIDI folder or a prepared data directory)")
    pairs = [tuple(a.split("=", 1)) for a in assign]
    if any(len(p) != 2 or not all(p) for p in pairs):
        raise JudgeError(f"--assign takes NAME=PATTERN, got {assign}")
    bands = reference_bands(references, rule, workers)
    unknown = [n for n, _ in pairs if n not in bands]
    if unknown:
        raise JudgeError(f"--assign names unknown reference(s) {unknown}; known: {list(bands)}")
    files, failed = expand_files(inputs)
    judged: list[Judged] = []
    for path in files:
        try:
            name = assign_reference(path, list(bands), pairs)
            judged.append(judge_file(path, bands[name], rule, primer_seconds))
        except (JudgeError, MidiReadError) as e:
            failed.append((str(path), str(e)))
    if not judged:
        reason = failed[0][1] if failed else "no input"
        raise JudgeError(f"no file could be judged: {reason}")
    groups = {
        n: summarize([j for j in judged if j.reference == n], b)
        for n, b in bands.items()
        if any(j.reference == n for j in judged)
    }
    report = JudgeReport(judged, bands, groups, failed, seconds=time.time() - started)
    if out is not None:
        write_report(report, Path(out), rule)
    return report


def write_report(report: JudgeReport, out: Path, rule: Rule) -> None:
    """judge.json, judge.txt and one judge-<reference>.png per reference used, in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    for name in report.groups:
        mine = [j for j in report.judged if j.reference == name]
        report.pictures.append(draw_judged(mine, report.bands[name], out / f"judge-{name}.png"))
    atomic_write_json(out / "judge.json", report.to_dict())
    failed = "".join(f"failed: {p}: {r}\n" for p, r in report.failed)
    atomic_write_text(out / "judge.txt", format_table(report, rule) + "\n" + failed)
