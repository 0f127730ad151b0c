"""`run_comparison`: same primers, same seed and settings, several models → a report folder.

    REPORT_DIR/
      index.html        the blind A/B listening page (no key inside)
      key.json          which model made which anonymous sample; read by `compare score`
      metrics.json      NLL on --data and distances to the real continuations (metrics.py)
      report.json       settings, seed, models, primers used and skipped, audio status
      pNN-<name>/       per primer: primer.{mid,mp3,png}, real.{mid,mp3,png} (primer + what
                        the piece really does next), s-<random id>.{mid,mp3,png} per model
                        (the audio format is `audio`: mp3, ogg, flac or wav)

Every sample holds the primer (as the model's tokenizer reads it) followed by the model's
continuation; its piano roll marks where the primer ends. Cuts and lengths are the primer
file's seconds, and a beat-time model's notes (score, jsb: decoded at 120 BPM) are put on the
file's tempo map, so every clip and measure of a primer shares the real piece's clock.
Primer i is continued with seed
`seed + i` by every model, so the models differ only in themselves. With the default cut, a
primer file too short for the real continuation to match the generated ones is cut earlier
(primers.primer_cut) and the page says so.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from midi_data.features import piece_features
from midi_data.files import atomic_write, atomic_write_json, atomic_write_text
from midi_data.notes import Notes, notes_to_midi
from midi_data.render import RenderError, find_renderer

from ..checkpoint import LoadedModel, bundled_models
from ..generation.loading import load_model
from ..generation.primers import Primer, PrimerError, find_primers
from ..generation.progress import progress_bar
from ..generation.runner import Job, Take, plan, run
from ..generation.settings import SamplingSettings, check_counts
from ..generation.sidecars import (
    decoded_notes,
    on_file_clock,
    result_record,
    settings_record,
    stamp,
    write_midi,
)
from ..longform.compare import judge_section
from .audio import RenderReport, render_all
from .choices import CompareError, check_models, checked_soundfont
from .metrics import model_nll, report_metrics
from .page import Clip, Pair, PrimerSection, build_page
from .primers import ComparePrimer, load_primer, notes_after, notes_before
from .rolls import Roll, draw_rolls
from .score import KEY_FILE

DEFAULT_PRIMER_SECONDS = 10.0
COMPARE_BATCH_SIZE = 8  # primers continued together (each model runs its own batches)
DEFAULT_AUDIO = "mp3"  # see midi_data.render.ENCODINGS: plays everywhere, a tenth of a WAV
OUR_FILES = ("index.html", KEY_FILE, "metrics.json", "report.json")


def model_labels(names: Sequence[str | Path]) -> list[str]:
    """Readable, unique labels: a bundled name as is, a directory by its last part."""
    bundled, labels = bundled_models(), []
    for name in names:
        text = str(name)
        base = text if text in bundled else (Path(text).name or text)
        label, n = base, 1
        while label in labels:
            n += 1
            label = f"{base}-{n}"
        labels.append(label)
    return labels


def _prepare_out_dir(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise CompareError(f"--out {out} exists and is not a folder")
    ours = [out / f for f in OUR_FILES if (out / f).exists()]
    folders = [p for p in out.glob("p[0-9][0-9]*") if p.is_dir()] if out.is_dir() else []
    if (ours or folders) and not force:
        raise CompareError(f"{out} already holds a comparison report (pass --force to replace it)")
    for p in ours:
        p.unlink()
    for p in folders:  # only the sample folders this command writes
        if re.fullmatch(r"p\d\d+-[A-Za-z0-9._-]+", p.name):
            shutil.rmtree(p)
    out.mkdir(parents=True, exist_ok=True)


def _generate(
    loaded: LoadedModel,
    label: str,
    primers: list[ComparePrimer],
    sampling: SamplingSettings,
    batch_size: int,
    quiet: bool,
) -> list[Take]:
    """One take per primer; primer i uses seed + i whatever the batching (`runner.run`)."""
    jobs = [Job(p.by_model[label]) for p in primers]
    with progress_bar(len(jobs), sampling, quiet, desc=label) as progress:
        return list(run(loaded, jobs, sampling, batch_size, progress))


def _write_sample(tok, primer: Primer, new: list[int], midi: Path) -> Notes:
    """Write primer + `new` to `midi` as decoded (a beat-time model's on the primer file's
    tempo map, see `sidecars.write_midi`) and return its notes, in the file's seconds."""
    write_midi(tok, midi, primer, new, keep_file=False)
    return decoded_notes(tok, primer, new)


def _roll_time(tok, primer: Primer):
    """The tokenizer whose time a roll is drawn in, or None: the file's seconds."""
    return None if on_file_clock(primer) else tok


def run_comparison(
    out_dir: str | Path,
    *,
    models: Sequence[str | Path],
    primers: Sequence[str | Path],
    sampling: SamplingSettings | None = None,
    soundfont: str | Path | None = None,
    audio: str | None = DEFAULT_AUDIO,
    data: str | Path | None = None,
    split: str = "test",
    device: str = "auto",
    batch_size: int = COMPARE_BATCH_SIZE,
    workers: int | None = None,
    force: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    """Run a listening comparison; return report.json's content (also written).

    Args:
        out_dir: the report folder (created; an existing report needs `force`).
        models: two or more bundled names or checkpoint/run directories.
        primers: MIDI files and/or folders (searched recursively).
        sampling: sampling settings, the same for every model (default SamplingSettings(); what
            they leave open, such as the temperature, each model takes from its card; its
            primer_seconds defaults to 10 s here, earlier in a file too short for `seconds`
            to follow: the rest of the file is the held-out real continuation).
        soundfont: .sf2 for FluidSynth (default: the usual places).
        audio: "mp3", "ogg", "flac" or "wav" (midi_data.render.render_audio); None: no audio.
        data: a prepared data directory to compute each model's NLL on (optional).
        split: the split of `data` to score.
        device: "auto", "cpu", "cuda", ...
        batch_size: primers continued together.
        workers: parallel audio renders (default: CPUs available).
        force: replace an existing report in out_dir.
        quiet: no progress bars.

    Raises:
        CompareError, PrimerError, CheckpointError (ValueErrors): before anything is written,
            also when `audio` is asked for and FluidSynth, a soundfont or the encoder is missing.
    """
    sampling = (sampling or SamplingSettings()).with_seed()
    move_cut = sampling.primer_seconds is None  # the user's own --primer-seconds is kept
    if move_cut:
        sampling = replace(sampling, primer_seconds=DEFAULT_PRIMER_SECONDS)
    check_counts(1, batch_size)
    check_models(models)
    if soundfont is not None:
        soundfont = checked_soundfont(soundfont)
    if data is not None and not Path(data).is_dir():
        raise CompareError(f"--data {data} is not a folder")
    if audio is not None:
        try:
            find_renderer(soundfont, audio)  # the same check and message as continue --audio
        except RenderError as e:
            raise CompareError(f"{e}; or pass --audio none for a report without audio") from None
    out = Path(out_dir)
    paths = find_primers(primers)
    labels = model_labels(models)
    loaded = {label: load_model(m, device) for label, m in zip(labels, models)}
    _prepare_out_dir(out, force)
    started = time.time()

    usable: list[ComparePrimer] = []
    skipped: list[dict[str, str]] = []
    for path in paths:
        try:
            usable.append(
                load_primer(
                    path,
                    len(usable) + 1,
                    loaded,
                    sampling.primer_seconds,
                    sampling.seconds,
                    move_cut=move_cut,
                )
            )
        except PrimerError as e:
            skipped.append({"path": str(path), "reason": str(e)})
    if not usable:
        raise CompareError(f"no usable primer among {len(paths)} file(s): {skipped[0]['reason']}")

    rng = random.Random(sampling.seed)
    generated = {
        label: _generate(loaded[label], label, usable, sampling, batch_size, quiet)
        for label in labels
    }
    samples: dict[str, dict[str, Any]] = {}  # sample id → key entry
    clips: dict[tuple[int, str], Clip] = {}
    features: dict[str, list] = {label: [] for label in labels}
    real_features: list = []
    jobs: list[tuple[Path, Path]] = []
    ext = audio or "wav"  # the clips' audio suffix (no file is made without audio)
    first = labels[0]
    for p in usable:
        folder = out / p.folder
        folder.mkdir(parents=True, exist_ok=True)
        tok = loaded[first].tokenizer
        primer = p.by_model[first]
        primer_notes = _write_sample(tok, primer, [], folder / "primer.mid")
        # primer_end just past its end: all of it is drawn in the primer's colour
        rolls = [
            Roll(primer_notes, folder / "primer.png", primer.heard_seconds + 0.01,
                 _roll_time(tok, primer), own_axis=True)
        ]  # fmt: skip
        jobs.append((folder / "primer.mid", folder / f"primer.{ext}"))
        if p.real is not None:
            cut = p.cut
            shifted = Notes(p.real.start + cut, p.real.end + cut, p.real.pitch, p.real.velocity)
            both = Notes.concat([notes_before(p.notes, cut), shifted])
            pm = notes_to_midi(both)
            atomic_write(folder / "real.mid", lambda t, pm=pm: pm.write(str(t)))
            rolls.append(Roll(both, folder / "real.png", cut))
            jobs.append((folder / "real.mid", folder / f"real.{ext}"))
            real_features.append(piece_features(p.real, p.real_seconds))
        else:
            real_features.append(None)
        for label in labels:
            tok, primer = loaded[label].tokenizer, p.by_model[label]
            take = generated[label][p.number - 1]
            result, new = take.result, take.result.tokens
            sid = f"s-{rng.getrandbits(40):010x}"
            while sid in samples:
                sid = f"s-{rng.getrandbits(40):010x}"
            midi = folder / f"{sid}.mid"
            # Decode with the primer before it: the continuation inherits the primer's last
            # velocity and closes its held notes (decoded alone, its notes would get the
            # default velocity). Then keep the notes that start after the cut, as for `real`.
            full = _write_sample(tok, primer, new, midi)
            cut = primer.heard_seconds
            rolls.append(Roll(full, folder / f"{sid}.png", cut, _roll_time(tok, primer)))
            jobs.append((midi, midi.with_suffix(f".{ext}")))
            seconds = result.seconds
            samples[sid] = {
                "model": label,
                "primer": str(p.path),
                "seed": take.seed,
                **result_record(result),
            }
            rel = f"{p.folder}/{sid}"
            clips[(p.number, label)] = Clip(f"{rel}.mid", f"{rel}.png", f"{rel}.{ext}")
            new_notes = notes_after(full, cut, max(seconds, 1e-3))
            features[label].append(
                piece_features(new_notes, max(seconds, 1e-3)) if len(new_notes) else None
            )
        draw_rolls(p.path, rolls)

    if audio is None:
        rendered_audio = RenderReport(available=False, reason="--audio none")
    else:
        rendered_audio = render_all(jobs, soundfont, workers, quiet)
    rendered = {str(w.relative_to(out)) for w in rendered_audio.rendered}

    nll = {
        label: model_nll(loaded[label], data, split, device) if data is not None else None
        for label in labels
    }
    metrics = report_metrics(nll, features, real_features)
    pairs, sections = _pairs_and_sections(usable, labels, clips, rendered, rng, ext, sampling)
    report_id = f"{sampling.seed:x}-{rng.getrandbits(48):012x}"
    key = {"report_id": report_id, "models": labels, "pairs": pairs, "samples": samples}
    atomic_write_json(out / KEY_FILE, key)
    atomic_write_json(out / "metrics.json", metrics)
    notes = []
    if not rendered_audio.available:
        notes.append(f"No audio: {rendered_audio.reason}. MIDI files and piano rolls were made.")
    notes += [f"Audio failed for {m.name}: {why}" for m, why in rendered_audio.failed]
    notes += [f"Skipped primer: {s['reason']}" for s in skipped]
    title = "Listening comparison: " + " vs ".join(labels)
    cuts = {m: [(out / clips[p.number, m].midi, p.by_model[m].heard_seconds) for p in usable]
            for m in labels}  # fmt: skip
    longform = judge_section(out, data, cuts)  # the long-form judge (its own module)
    page = build_page(report_id, title, sections, metrics, notes, longform)
    atomic_write_text(out / "index.html", page)
    report = {
        **stamp(),
        "seconds_taken": round(time.time() - started, 1),
        "report_id": report_id,
        "models": {label: str(loaded[label].directory) for label in labels},
        "sampling": settings_record(sampling),
        "sampling_by_model": {label: plan(loaded[label], sampling).record() for label in labels},
        "primers": [
            {
                "path": str(p.path),
                "folder": p.folder,
                "cut": round(p.cut, 3),
                "requested_cut": p.requested_cut,
                "piece_seconds": round(p.piece_seconds, 3),
                "real_seconds": round(p.real_seconds, 3),
                "note": p.cut_note(sampling.seconds),
            }
            for p in usable
        ],
        "skipped": skipped,
        "audio": {
            "format": audio,
            "available": rendered_audio.available,
            "reason": rendered_audio.reason,
            "soundfont": rendered_audio.soundfont,
            "rendered": len(rendered_audio.rendered),
            "failed": [{"midi": str(m), "reason": r} for m, r in rendered_audio.failed],
        },
        "pairs": len(pairs),
    }
    atomic_write_json(out / "report.json", report)
    return report


def _pairs_and_sections(usable, labels, clips, rendered, rng, ext, sampling):
    def clip(c: Clip) -> Clip:
        return Clip(c.midi, c.image, c.audio if c.audio in rendered else None)

    pairs: dict[str, dict[str, str]] = {}
    sections = []
    for p in usable:
        section_pairs = []
        for k, (x, y) in enumerate(itertools.combinations(labels, 2), start=1):
            if rng.random() < 0.5:
                x, y = y, x
            pid = f"p{p.number:02d}-{k}"
            pairs[pid] = {"A": x, "B": y, "primer": str(p.path)}
            section_pairs.append(Pair(pid, clip(clips[(p.number, x)]), clip(clips[(p.number, y)])))
        base = f"{p.folder}/primer"
        real = None
        if p.real is not None:
            real = clip(
                Clip(f"{p.folder}/real.mid", f"{p.folder}/real.png", f"{p.folder}/real.{ext}")
            )
        notes = [] if p.real is not None else ["This primer has no music after the cut."]
        if (cut_note := p.cut_note(sampling.seconds)) is not None:
            notes.append(cut_note)
        sections.append(
            PrimerSection(
                p.number,
                p.path.name,
                p.tracks,
                clip(Clip(f"{base}.mid", f"{base}.png", f"{base}.{ext}")),
                section_pairs,
                real,
                notes,
            )
        )
    return pairs, sections


def read_report(report_dir: str | Path) -> dict[str, Any]:
    """report.json of a finished comparison."""
    path = Path(report_dir) / "report.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise CompareError(f"cannot read {path}: {e}") from None
