"""The objective metrics of metrics.json as HTML tables that fit a 1280 px window.

Tables are transposed: one row per measure, one column per model (plus the real
continuations where they have a value), so adding features never widens a table and a few
models fit side by side. A missing value shows "n/a" with a footnote number; the footnotes
under the table give the reason metrics.json records (`metrics.missing_reasons`).
"""

from __future__ import annotations

from html import escape
from typing import Any

# (label, what the number is) per feature of midi_data.features
FEATURES = {
    "pitch_class": ("pitch classes", "histogram of the 12 pitch classes"),
    "interval": ("melodic intervals", "skyline steps, −12…+12 semitones"),
    "ioi": ("inter-onset intervals", "seconds between onsets"),
    "velocity": ("velocities", "16 bins of MIDI velocity"),
    "polyphony": ("polyphony", "notes sounding, every 50 ms"),
    "note_density": ("note density", "onsets per second"),
    "pitch_range": ("pitch range", "semitones"),
    "notes_per_second": ("notes per second", "onsets per second"),
    "mean_polyphony": ("mean polyphony", "notes sounding when any sounds"),
    "repetition": ("repetition", "share of 4-note motifs heard before"),
    "self_similarity": ("self-similarity", "best match of 2 s segments with earlier ones"),
}


def esc(value: object) -> str:
    return escape(str(value), quote=True)


class Footnotes:
    """Reasons for missing values, numbered in the order they are first needed."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def cell(self, value: Any, reason: str | None, digits: int = 3) -> str:
        if value is None:
            why = reason or "not computed"
            if why not in self.reasons:
                self.reasons.append(why)
            n = self.reasons.index(why) + 1
            return f'<td class="na">n/a<sup>{n}</sup></td>'
        if isinstance(value, float):
            return f"<td>{value:.{digits}f}</td>"
        return f"<td>{esc(value)}</td>"

    def html(self) -> str:
        if not self.reasons:
            return ""
        items = "".join(f"<li>{esc(r)}</li>" for r in self.reasons)
        return f'<ol class="why" aria-label="why values are missing">{items}</ol>'


def _label(name: str) -> str:
    label, unit = FEATURES.get(name, (name, ""))
    small = f" <small>({esc(unit)})</small>" if unit else ""
    return f'<th scope="row">{esc(label)}{small}</th>'


def _table(caption: str, columns: list[str], rows: list[str], notes: Footnotes) -> str:
    head = "".join(f'<th scope="col">{esc(c)}</th>' for c in ["", *columns])
    return f"<h3>{caption}</h3><table><tr>{head}</tr>{''.join(rows)}</table>{notes.html()}"


def _group(title: str, columns: list[str]) -> str:
    return f'<tr><th class="group" colspan="{len(columns) + 1}">{esc(title)}</th></tr>'


def _paired(models: dict[str, Any], hist: list[str], scalars: list[str]) -> str:
    notes, names = Footnotes(), list(models)

    def row(label: str, value, key: str, digits: int = 3) -> str:
        cells = []
        for n in names:
            missing = models[n].get("missing", {})
            reason = missing.get(key) if key == "nll" else missing.get("paired", missing.get(key))
            cells.append(notes.cell(value(models[n]), reason, digits))
        return f"<tr>{label}{''.join(cells)}</tr>"

    nll_label = (
        '<th scope="row">NLL <small>(nats per token on --data; lower is better)</small></th>'
    )
    rows = [row(nll_label, lambda m: (m.get("nll") or {}).get("nll"), "nll", 4)]
    rows.append(_group("Overlap of histograms with the real continuation (1 = identical)", names))
    rows += [
        row(_label(h), lambda m, h=h: m["paired"]["overlap"].get(h), f"paired.overlap.{h}")
        for h in hist
    ]
    rows.append(_group("|model − real continuation| (0 = identical)", names))
    rows += [
        row(_label(f), lambda m, f=f: m["paired"]["abs_diff"].get(f), f"paired.abs_diff.{f}")
        for f in scalars
    ]
    return _table("Against the real continuation of the same primer", names, rows, notes)


def _means(models: dict[str, Any], real: dict[str, Any], scalars: list[str]) -> str:
    notes = Footnotes()
    columns = {**models, "real continuations": real}
    rows = []
    for f in scalars:
        cells = [
            notes.cell(m.get("mean", {}).get(f), m.get("missing", {}).get(f"mean.{f}"))
            for m in columns.values()
        ]
        rows.append(f"<tr>{_label(f)}{''.join(cells)}</tr>")
    return _table("Mean per piece", list(columns), rows, notes)


def _set(models: dict[str, Any], feats: list[str]) -> str:
    notes, names = Footnotes(), list(models)
    rows = []
    for f in feats:
        cells = []
        for n in names:
            s, missing = models[n].get("set"), models[n].get("missing", {})
            value = None if s is None else s["overlap"].get(f)
            cells.append(notes.cell(value, missing.get("set") or missing.get(f"set.overlap.{f}")))
        rows.append(f"<tr>{_label(f)}{''.join(cells)}</tr>")
    caption = (
        "Set level: overlapping area (Yang &amp; Lerch; 1 = as close to the real pieces as they "
        "are to each other)"
    )
    return _table(caption, names, rows, notes)


def metrics_tables(metrics: dict[str, Any]) -> str:
    """The objective metrics as HTML tables (see metrics.py for what each number means)."""
    models: dict[str, Any] = metrics.get("models", {})
    hist = list(metrics.get("histogram_features", []))
    scalars = list(metrics.get("scalar_features", []))
    return "\n".join(
        [
            _paired(models, hist, scalars),
            _means(models, metrics.get("real", {}), scalars),
            _set(models, [*hist, *scalars]),
            f'<p class="note">{esc(metrics.get("method", {}).get("summary", ""))}</p>',
        ]
    )
