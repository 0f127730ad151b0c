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
from .tables import metrics_tables


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

# Laid out for a 1280 px window: the body is at most 1180 px (rolls are drawn 1160 px wide,
# pianoroll.WIDTH_PX) and nothing is wider than the body, so nothing scrolls sideways.
STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 1180px; margin: 1.5em auto;
       padding: 0 1em; color: #222; }
section.primer { border-top: 2px solid #ccd; margin-top: 2em; padding-top: .5em; }
.clips { display: flex; gap: 1.5em; flex-wrap: wrap; }
.clip { flex: 1 1 300px; min-width: 0; }
img { max-width: 100%; height: auto; border: 1px solid #ddd; display: block; }
figure { margin: .4em 0; }
figcaption { font-weight: bold; }
audio { width: 100%; }
fieldset { margin: .8em 0; border: 1px solid #bbc; }
.pair { background: #f7f8fb; padding: .6em .8em; margin: 1em 0; border-radius: 6px; }
.warn { color: #9a3412; }
.note { color: #444; }
table { border-collapse: collapse; margin: .6em 0 .4em; font-size: 13px; max-width: 100%; }
th, td { border: 1px solid #ccd; padding: .25em .5em; text-align: right;
         overflow-wrap: anywhere; }
th:first-child, td:first-child { text-align: left; }
th.group { background: #f1f3f8; text-align: left; font-weight: 600; }
td.na { color: #777; }
ol.why { font-size: 13px; color: #555; margin-top: 0; }
textarea { width: 100%; height: 8em; font: 12px monospace; box-sizing: border-box; }
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
    return (
        f'<img src="{href(clip.image)}" alt="{esc("piano roll: " + label)}" loading="lazy" '
        'width="1160" height="340">'
    )


def _pair(pair: Pair) -> str:
    sides = "".join(
        f'<div class="clip"><h4>{side}</h4>{_audio(clip, side)}</div>'
        for side, clip in (("A", pair.a), ("B", pair.b))
    )
    rolls = "".join(  # one above the other, full width, on the same axes: they line up
        f"<figure><figcaption>{side}</figcaption>{_image(clip, side)}</figure>"
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
        f"<details><summary>Piano rolls (after listening)</summary>{rolls}</details></div>"
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
    parts += [f'<p class="note">{esc(n)}</p>' for n in s.notes]
    parts += [_pair(p) for p in s.pairs]
    if s.real is not None:
        parts.append(
            "<details><summary>What the piece really does next (after listening)</summary>"
            f'<div class="clip">{_audio(s.real, "real continuation")}'
            f"{_image(s.real, 'real continuation')}</div></details>"
        )
    parts.append("</section>")
    return "\n".join(parts)


def build_page(
    report_id: str,
    title: str,
    sections: Sequence[PrimerSection],
    metrics: dict[str, Any] | None,
    notes: Sequence[str] = (),
    extra: str = "",
) -> str:
    """The whole index.html as a string; `extra`: HTML sections appended (the judge's)."""
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
    body.append(extra)
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head>\n"
        f'<body data-report="{esc(report_id)}">\n'
        + "\n".join(body)
        + f"\n<script>{SCRIPT}</script>\n</body></html>\n"
    )
