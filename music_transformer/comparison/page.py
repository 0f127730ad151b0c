"""index.html: the blind A/B listening page, self-contained and safe to open from file://.

Everything shown that came from a user (primer file names, MIDI track names, model names)
passes through `html.escape`; attribute values are our own ids and relative paths, quoted
and escaped too. The only script is inline, and a Content-Security-Policy allows exactly that
script (by its SHA-256), so even a missed escape could not run an injected handler; nothing
is fetched from the network. The page does not contain the key: sample files have random
names and only key.json says which model made which.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from .score import ANSWERS_FORMAT


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def href(path: str) -> str:
    """A relative path as an escaped URL (our paths are ASCII, but be strict anyway)."""
    return esc(quote(path, safe="/-_."))


@dataclass
class Clip:
    """One playable piece: relative paths of its files (audio None when not rendered)."""

    midi: str
    image: str
    audio: str | None = None


@dataclass
class Pair:
    id: str  # e.g. "p01-1"; the answers' key
    a: Clip
    b: Clip


@dataclass
class PrimerSection:
    number: int
    name: str  # the primer's file name, as the user gave it
    tracks: list[str]  # MIDI track names of the primer file
    primer: Clip
    pairs: list[Pair]
    real: Clip | None = None  # primer + what the piece really does next
    notes: list[str] = field(default_factory=list)  # e.g. "real continuation: none"


SCRIPT = """
(function () {
  "use strict";
  var reportId = document.body.getAttribute("data-report");
  var store = "music-transformer-answers-" + reportId;
  var pairs = Array.prototype.slice.call(document.querySelectorAll(".pair"));
  var out = document.getElementById("answers-json");
  var counter = document.getElementById("answered");
  function collect() {
    var answers = {};
    pairs.forEach(function (p) {
      var c = p.querySelector("input[type=radio]:checked");
      if (c) { answers[p.getAttribute("data-pair")] = c.value; }
    });
    return answers;
  }
  function update() {
    var answers = collect();
    var doc = {format: "%FORMAT%", report_id: reportId, answers: answers,
               exported: new Date().toISOString()};
    out.value = JSON.stringify(doc, null, 2);
    counter.textContent = Object.keys(answers).length + " of " + pairs.length + " answered";
    try { localStorage.setItem(store, JSON.stringify(answers)); } catch (e) { /* no storage */ }
  }
  try {
    var saved = JSON.parse(localStorage.getItem(store) || "{}");
    pairs.forEach(function (p) {
      var v = saved[p.getAttribute("data-pair")];
      var input = v && p.querySelector("input[value='" + v.replace(/[^A-Za-z]/g, "") + "']");
      if (input) { input.checked = true; }
    });
  } catch (e) { /* nothing saved */ }
  document.addEventListener("change", update);
  document.getElementById("export").addEventListener("click", function () {
    update();
    var blob = new Blob([out.value], {type: "application/json"});
    var link = document.getElementById("download");
    link.href = URL.createObjectURL(blob);
    link.download = "answers-" + reportId + ".json";
    link.hidden = false;
    link.click();
  });
  update();
})();
""".replace("%FORMAT%", ANSWERS_FORMAT)

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 980px; margin: 2em auto; padding: 0 1em;
       color: #222; }
section.primer { border-top: 2px solid #ccd; margin-top: 2em; padding-top: .5em; }
.clips { display: flex; gap: 1.5em; flex-wrap: wrap; }
.clip { flex: 1 1 300px; }
.clip img { max-width: 100%; border: 1px solid #ddd; display: block; }
audio { width: 100%; }
fieldset { margin: .8em 0; border: 1px solid #bbc; }
.pair { background: #f7f8fb; padding: .6em .8em; margin: 1em 0; border-radius: 6px; }
.warn { color: #9a3412; }
table { border-collapse: collapse; margin: .6em 0 1.4em; font-size: 13px; display: block;
        overflow-x: auto; }
th, td { border: 1px solid #ccd; padding: .25em .5em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
textarea { width: 100%; height: 8em; font: 12px monospace; }
.legend span { padding: 0 .4em; }
"""


def _audio(clip: Clip, label: str) -> str:
    links = f'<a href="{href(clip.midi)}">MIDI</a>'
    if clip.audio is None:
        return f'<p class="noaudio">{esc(label)}: no audio ({links})</p>'
    return (
        f'<audio controls preload="metadata" src="{href(clip.audio)}" '
        f'aria-label="{esc(label)}"></audio><div class="links">{links}</div>'
    )


def _image(clip: Clip, label: str) -> str:
    return f'<img src="{href(clip.image)}" alt="{esc("piano roll: " + label)}" loading="lazy">'


def _pair(pair: Pair) -> str:
    sides = "".join(
        f'<div class="clip"><h4>{side}</h4>{_audio(clip, side)}</div>'
        for side, clip in (("A", pair.a), ("B", pair.b))
    )
    rolls = "".join(
        f'<div class="clip">{side}{_image(clip, side)}</div>'
        for side, clip in (("A", pair.a), ("B", pair.b))
    )
    pid = esc(pair.id)
    radios = "".join(
        f'<label><input type="radio" name="{pid}" value="{value}"> {text}</label> '
        for value, text in (("A", "A"), ("B", "B"), ("none", "No preference"))
    )
    return (
        f'<div class="pair" data-pair="{pid}"><div class="clips">{sides}</div>'
        f"<fieldset><legend>Which continuation do you prefer?</legend>{radios}</fieldset>"
        f"<details><summary>Piano rolls (after listening)</summary>"
        f'<div class="clips">{rolls}</div></details></div>'
    )


def _section(s: PrimerSection) -> str:
    tracks = ", ".join(esc(t) for t in s.tracks) if s.tracks else "(none named)"
    parts = [
        f'<section class="primer" id="primer-{s.number}">',
        f'<h2>{s.number}. <span class="name">{esc(s.name)}</span></h2>',
        f'<p class="tracks">MIDI tracks: {tracks}</p>',
        f'<div class="clip"><h3>Primer</h3>{_audio(s.primer, "primer")}'
        f"{_image(s.primer, 'primer')}</div>",
    ]
    parts += [_pair(p) for p in s.pairs]
    if s.real is not None:
        parts.append(
            "<details><summary>What the piece really does next (after listening)</summary>"
            f'<div class="clip">{_audio(s.real, "real continuation")}'
            f"{_image(s.real, 'real continuation')}</div></details>"
        )
    parts += [f'<p class="note">{esc(n)}</p>' for n in s.notes]
    parts.append("</section>")
    return "\n".join(parts)


def _cell(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return esc(value)


def metrics_tables(metrics: dict[str, Any]) -> str:
    """The objective metrics as HTML tables (see metrics.py for what each number means)."""
    models: dict[str, Any] = metrics.get("models", {})
    hist = metrics.get("histogram_features", [])
    scalars = metrics.get("scalar_features", [])
    out = []
    head = "".join(f"<th>{esc(h)}</th>" for h in ["model", "NLL (nats/token)", *hist])
    rows = []
    for name, m in models.items():
        cells = [_cell((m.get("nll") or {}).get("nll"), 4)]
        cells += [_cell(m["paired"]["overlap"].get(h)) for h in hist]
        rows.append(f"<tr><td>{esc(name)}</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    out.append(
        "<h3>Overlap with the real continuation of the same primer (1 = identical)</h3>"
        f"<table><tr>{head}</tr>{''.join(rows)}</table>"
    )
    head = "".join(f"<th>{esc(h)}</th>" for h in ["mean per piece", *scalars])
    rows = [
        f"<tr><td>{esc(name)}</td>"
        + "".join(f"<td>{_cell(m['mean'].get(s))}</td>" for s in scalars)
        + "</tr>"
        for name, m in [*models.items(), ("real continuations", metrics.get("real", {}))]
        if "mean" in m
    ]
    out.append(f"<h3>Scalar features</h3><table><tr>{head}</tr>{''.join(rows)}</table>")
    set_rows = [(n, m["set"]) for n, m in models.items() if m.get("set")]
    if set_rows:
        feats = [*hist, *scalars]
        head = "".join(f"<th>{esc(h)}</th>" for h in ["model", *feats])
        rows = [
            f"<tr><td>{esc(n)}</td>"
            + "".join(f"<td>{_cell(s['overlap'].get(f))}</td>" for f in feats)
            + "</tr>"
            for n, s in set_rows
        ]
        out.append(
            "<h3>Set-level overlapping area (Yang &amp; Lerch; 1 = as close to the real "
            f"pieces as they are to each other)</h3><table><tr>{head}</tr>{''.join(rows)}</table>"
        )
    out.append(f'<p class="note">{esc(metrics.get("method", {}).get("summary", ""))}</p>')
    return "\n".join(out)


def build_page(
    report_id: str,
    title: str,
    sections: Sequence[PrimerSection],
    metrics: dict[str, Any] | None,
    notes: Sequence[str] = (),
) -> str:
    """The whole index.html as a string."""
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode("utf-8")).digest()).decode("ascii")
    csp = (
        "default-src 'none'; img-src 'self' file: blob:; media-src 'self' file: blob:; "
        f"style-src 'unsafe-inline'; script-src 'sha256-{digest}'; base-uri 'none'; "
        "form-action 'none'"
    )
    body = [
        f"<h1>{esc(title)}</h1>",
        "<p>For each primer, listen to the primer, then to continuations A and B (each plays "
        "the primer first; the red line in the piano roll marks where it ends). The order is "
        "random and the files are anonymous. Pick the one you prefer, or “No preference”. "
        "When done, press <b>Export answers</b> and send the JSON file.</p>",
        *[f'<p class="warn">{esc(n)}</p>' for n in notes],
        *[_section(s) for s in sections],
        '<section id="export-section"><h2>Your answers</h2>',
        '<p id="answered"></p><button id="export" type="button">Export answers</button> '
        '<a id="download" hidden>download answers.json</a>',
        "<p>If the download is blocked, copy this text into a file:</p>"
        '<textarea id="answers-json" readonly></textarea></section>',
    ]
    if metrics:
        body.append(
            '<section id="metrics"><details><summary><h2 style="display:inline">Objective '
            "metrics (open after listening)</h2></summary>"
            f"{metrics_tables(metrics)}</details></section>"
        )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head>\n"
        f'<body data-report="{esc(report_id)}">\n'
        + "\n".join(body)
        + f"\n<script>{SCRIPT}</script>\n</body></html>\n"
    )
