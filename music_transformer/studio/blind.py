"""Listen blind: the same take continued by two models, shown as A and B in random order.

A trial is two takes of one parent, made with the same settings and seed by two models (by
default the Transformer and its LSTM baseline), kept in the piece like any take but with
their model hidden until the listener reveals the trials. Each trial is one pair of
`compare`'s key, and the choices are its answers, so `export` writes the files `compare`
writes and reads — `music-transformer compare score PIECE/blind PIECE/blind/answers.json`
scores them (`comparison.score`).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from midi_data.files import atomic_write_json

from ..comparison.score import ANSWERS_FORMAT, CHOICES, KEY_FILE
from .jobs import Job
from .pieces import PieceError
from .service import Studio

DEFAULT_PAIR = ("piano-transformer", "piano-lstm")
ANSWERS_FILE = "answers.json"


def default_pair(studio: Studio) -> list[str]:
    offered = studio.models.paths
    pair = [m for m in DEFAULT_PAIR if m in offered]
    return pair if len(pair) == 2 else list(offered)[:2]


def submit_trial(studio: Studio, piece_id: str, body: Any) -> Job:
    """Queue a trial: body = the settings of `Studio.settings` plus "models": [x, y]."""
    if not isinstance(body, dict):
        raise PieceError("the request body must be a JSON object")
    body = dict(body)
    models = body.pop("models", None) or default_pair(studio)
    if not isinstance(models, list) or len(models) != 2 or models[0] == models[1]:
        raise PieceError("models must name two different models")
    for m in models:
        try:
            studio.models.check(m)
        except ValueError as e:
            raise PieceError(str(e)) from None
    piece = studio.pieces.load(piece_id)
    parent = body.get("node", piece["current"])
    studio.pieces.node(piece, parent)
    body["candidates"] = 1
    _, settings, _ = studio.settings({**body, "model": models[0]}, parent)
    sides = models if secrets.randbelow(2) == 0 else models[::-1]  # sides[0] plays as A
    trial_id = f"b{len(piece['blind']) + 1}-{secrets.token_hex(2)}"
    request = {"node": parent, "trial": trial_id, **settings.record()}

    def run(job: Job) -> None:
        batches = [(m, settings, 1) for m in sides]
        labels = [f"{trial_id}:A", f"{trial_id}:B"]
        a, b = studio.make_takes(job, piece_id, parent, batches, blind=labels)
        job.takes = [a, b]
        trial = {"id": trial_id, "parent": parent, "A": a, "B": b, "choice": None,
                 "revealed": False, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}  # fmt: skip
        studio.pieces.update(piece_id, lambda p: p["blind"].append(trial))
        job.emit("trial", trial=public_trial(studio.pieces.load(piece_id), trial))

    return studio.jobs.submit("blind", piece_id, request, run)


def public_trial(piece: dict[str, Any], trial: dict[str, Any]) -> dict[str, Any]:
    out = {k: trial[k] for k in ("id", "parent", "A", "B", "choice", "revealed")}
    if trial["revealed"]:
        out["models"] = {s: piece["nodes"][trial[s]]["model"] for s in ("A", "B")}
    return out


def trials(piece: dict[str, Any]) -> list[dict[str, Any]]:
    return [public_trial(piece, t) for t in piece["blind"]]


def choose(studio: Studio, piece_id: str, trial_id: str, choice: Any) -> dict[str, Any]:
    """Record the listener's choice ("A", "B" or "none") for a trial not yet revealed."""
    if choice not in CHOICES:
        raise PieceError(f"choice must be one of {', '.join(CHOICES)}, got {choice!r}")

    def change(piece: dict[str, Any]) -> None:
        trial = _trial(piece, trial_id)
        if trial["revealed"]:
            raise PieceError(f"trial {trial_id} is revealed already: its choice is final", 409)
        trial["choice"] = choice

    return public_trial(
        studio.pieces.update(piece_id, change), _trial(studio.pieces.load(piece_id), trial_id)
    )


def reveal(studio: Studio, piece_id: str) -> list[dict[str, Any]]:
    """Reveal every answered trial (the models behind A and B)."""

    def change(piece: dict[str, Any]) -> None:
        for trial in piece["blind"]:
            if trial["choice"] is not None:
                trial["revealed"] = True

    return trials(studio.pieces.update(piece_id, change))


def export(studio: Studio, piece_id: str) -> dict[str, Any]:
    """Write PIECE/blind/key.json and answers.json as `compare` does, for the revealed
    trials; returns both."""
    piece = studio.pieces.load(piece_id)
    done = [t for t in piece["blind"] if t["revealed"]]
    if not done:
        raise PieceError("no revealed trial to export: answer and reveal some first", 409)
    report_id = f"studio-{piece_id}"
    pairs = {}
    for t in done:
        models = {s: piece["nodes"][t[s]]["model"] for s in ("A", "B")}
        primer = str(studio.take_file(piece_id, t["parent"]))
        pairs[t["id"]] = {**models, "primer": primer, "takes": {"A": t["A"], "B": t["B"]}}
    labels = sorted({m for p in pairs.values() for m in (p["A"], p["B"])})
    key = {"report_id": report_id, "models": labels, "pairs": pairs}
    answers = {
        "format": ANSWERS_FORMAT,
        "report_id": report_id,
        "answers": {t["id"]: t["choice"] for t in done},
        "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    folder = studio.pieces.folder(piece_id) / "blind"
    atomic_write_json(folder / KEY_FILE, key)
    atomic_write_json(folder / ANSWERS_FILE, answers)
    return {"key": key, "answers": answers, "folder": str(folder)}


def _trial(piece: dict[str, Any], trial_id: str) -> dict[str, Any]:
    for trial in piece["blind"]:
        if trial["id"] == trial_id:
            return trial
    raise PieceError(f"no blind trial {trial_id!r} in this piece", 404)
