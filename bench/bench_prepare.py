"""Measure the data pipeline; writes bench/results/prepare.md (and prepare.json).

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/bench_prepare.py [--workers 2] [--cold]

1. `prepare music21:bach` (performance preset): files/s and tokens/s, with a warm cache of
   converted chorales; with --cold also the first run, which converts the corpus to MIDI.
2. Tokens per chorale and tokens per second of MAESTRO music, for each preset.
3. Vocabulary sizes.
4. Round-trip errors on the MAESTRO samples (performance) and the chorales (both presets).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pretty_midi

from midi_data import PRESETS, make_tokenizer, music21_files, prepare
from midi_data.midi_io import read_score
from midi_data.notes import notes_from_score

ROOT = Path(__file__).resolve().parents[1]
MAESTRO = sorted((ROOT.parent / "shared" / "data" / "maestro-samples").glob("*.mid"))


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "load_1min": round(os.getloadavg()[0], 2),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "python": platform.python_version(),
    }


def bench_prepare(workers: int, cold: bool) -> dict:
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        if cold:
            os.environ["MUSIC_TRANSFORMER_CACHE"] = str(Path(tmp) / "cache")
            start = time.perf_counter()
            r = prepare(["music21:bach"], Path(tmp) / "cold", workers=workers, progress=False)
            out["cold"] = summarize(r, time.perf_counter() - start)
        else:
            music21_files("bach", workers=workers)  # make sure the cache is warm
        start = time.perf_counter()
        r = prepare(["music21:bach"], Path(tmp) / "warm", workers=workers, progress=False)
        out["warm"] = summarize(r, time.perf_counter() - start)
    if cold:
        os.environ.pop("MUSIC_TRANSFORMER_CACHE", None)
    return out


def summarize(r, seconds: float) -> dict:
    files = r.num_files
    tokens = sum(r.tokens.values())
    return {
        "files": files,
        "skipped": len(r.skipped),
        "tokens": tokens,
        "seconds": round(seconds, 2),
        "files_per_s": round(files / seconds, 1),
        "tokens_per_s": round(tokens / seconds),
    }


def token_rates(chorales: list[Path]) -> dict:
    rates = {}
    for preset in PRESETS:
        tok = make_tokenizer(preset)
        per_chorale = [len(tok.encode(p)) for p in chorales]
        maestro_tokens = maestro_seconds = 0.0
        start = time.perf_counter()
        for p in MAESTRO:
            maestro_tokens += len(tok.encode(p))
            maestro_seconds += pretty_midi.PrettyMIDI(str(p)).get_end_time()
        rates[preset] = {
            "vocab_size": tok.vocab_size,
            "tokens_per_chorale_mean": round(float(np.mean(per_chorale))),
            "tokens_per_chorale_median": round(float(np.median(per_chorale))),
            "chorales": len(per_chorale),
            "maestro_tokens_per_second_of_music": round(maestro_tokens / maestro_seconds, 1),
            "maestro_encode_tokens_per_s": round(maestro_tokens / (time.perf_counter() - start)),
        }
    return rates


def nearest_errors(original, decoded) -> tuple[np.ndarray, np.ndarray]:
    """For each original (start, pitch, velocity): |Δonset| and |Δvelocity| to the decoded
    note of the same pitch with the nearest onset."""
    by_pitch: dict[int, list] = {}
    for s, p, v in decoded:
        by_pitch.setdefault(p, []).append((s, v))
    on, vel = [], []
    for s, p, v in original:
        cands = by_pitch.get(p, [])
        s2, v2 = min(cands, key=lambda c: abs(c[0] - s))
        on.append(abs(s2 - s))
        vel.append(abs(v2 - v))
    return np.array(on), np.array(vel)


def performance_errors() -> dict:
    tok = make_tokenizer("performance")
    on_all, vel_all, off_all, n_in, n_out = [], [], [], 0, 0
    for p in MAESTRO:
        pm = pretty_midi.PrettyMIDI(str(p))
        original = [(n.start, n.pitch, n.velocity) for i in pm.instruments for n in i.notes]
        ids = tok.encode(p)
        notes = tok.decode_notes(ids)
        decoded = list(zip(notes.start * 0.01, notes.pitch.tolist(), notes.velocity.tolist()))
        on, vel = nearest_errors(original, decoded)
        on_all.append(on)
        vel_all.append(vel)
        # Offsets against the preset's own unquantized performance (pedal folded); notes cut
        # short by a re-strike of their pitch (a design rule, not an error) are left out.
        raw = notes_from_score(read_score(p))
        ends: dict[tuple[int, int], float] = {}
        for start, end, pitch in zip(raw.start, raw.end, raw.pitch.tolist()):
            key = (pitch, round(start * 100))
            ends[key] = max(ends.get(key, 0.0), end)
        for start, end, pitch in zip(notes.start.tolist(), notes.end.tolist(), notes.pitch):
            want = max(ends.get((int(pitch), start), np.nan), (start + 1) * 0.01)
            if end * 0.01 >= want - 0.01:
                off_all.append(abs(end * 0.01 - want))
        n_in, n_out = n_in + len(original), n_out + len(decoded)
    on, vel, off = np.concatenate(on_all), np.concatenate(vel_all), np.array(off_all)
    return {
        "maestro_notes_in": n_in,
        "maestro_notes_out": n_out,
        "onset_error_ms_mean": round(1000 * float(on.mean()), 2),
        "onset_error_ms_max": round(1000 * float(on.max()), 2),
        "offset_quantization_error_ms_mean": round(1000 * float(np.nanmean(off)), 2),
        "velocity_error_mean": round(float(vel.mean()), 2),
        "velocity_error_max": int(vel.max()),
    }


def score_errors(chorales: list[Path]) -> dict:
    tok = make_tokenizer("score")
    on_all, vel_all, n_in, n_out = [], [], 0, 0
    for p in chorales:
        pm = pretty_midi.PrettyMIDI(str(p))
        res = pm.resolution
        original = [
            (pm.time_to_tick(n.start) / res, n.pitch, n.velocity)
            for i in pm.instruments
            for n in i.notes
        ]
        dec = tok.decode(tok.encode(p)).instruments[0].notes
        decoded = [(n.start / 0.5, n.pitch, n.velocity) for n in dec]  # beats at 120 BPM
        on, vel = nearest_errors(original, decoded)
        on_all.append(on)
        vel_all.append(vel)
        n_in, n_out = n_in + len(original), n_out + len(decoded)
    on, vel = np.concatenate(on_all), np.concatenate(vel_all)
    return {
        "chorale_notes_in": n_in,
        "chorale_notes_out": n_out,
        "onset_error_beats_max": float(on.max()),
        "velocity_error_max": int(vel.max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--cold", action="store_true", help="also time the first conversion")
    args = parser.parse_args()
    results = {"machine_before": machine(), "workers": args.workers}
    results["prepare_music21_bach"] = bench_prepare(args.workers, args.cold)
    chorales = [f.path for f in music21_files("bach") if f.error is None]
    results["tokens"] = token_rates(chorales)
    results["round_trip_performance"] = performance_errors()
    results["round_trip_score_chorales"] = score_errors(chorales)
    results["machine_after"] = machine()
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "prepare.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "prepare.md").write_text(markdown(results))
    print(markdown(results))


def markdown(r: dict) -> str:
    lines = ["# Data pipeline measurements (bench/bench_prepare.py)", ""]
    m0, m1 = r["machine_before"], r["machine_after"]
    lines += [
        f"Machine: {m0['cpus']} CPUs, Python {m0['python']}, "
        f"OMP_WAIT_POLICY={m0['OMP_WAIT_POLICY']}, 1-min load {m0['load_1min']} before / "
        f"{m1['load_1min']} after (other engineers share the machine). Workers: {r['workers']}.",
        "",
        "## prepare music21:bach (performance preset)",
        "",
        "| run | files | skipped | tokens | seconds | files/s | tokens/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, x in r["prepare_music21_bach"].items():
        label = "cold (converts the corpus)" if name == "cold" else "warm cache"
        lines.append(
            f"| {label} | {x['files']} | {x['skipped']} | {x['tokens']:,} | {x['seconds']} | "
            f"{x['files_per_s']} | {x['tokens_per_s']:,} |"
        )
    lines += [
        "",
        "## Tokens",
        "",
        "| preset | vocab | tokens/chorale (mean / median) | MAESTRO tokens per second "
        "of music | encode speed (tokens/s, 1 process) |",
        "|---|---|---|---|---|",
    ]
    for preset, x in r["tokens"].items():
        lines.append(
            f"| {preset} | {x['vocab_size']} | {x['tokens_per_chorale_mean']} / "
            f"{x['tokens_per_chorale_median']} | {x['maestro_tokens_per_second_of_music']} | "
            f"{x['maestro_encode_tokens_per_s']:,} |"
        )
    p, s = r["round_trip_performance"], r["round_trip_score_chorales"]
    lines += [
        "",
        "## Round trips",
        "",
        f"performance, 10 MAESTRO samples: {p['maestro_notes_in']:,} notes in, "
        f"{p['maestro_notes_out']:,} out (unisons merged by design); onset error mean "
        f"{p['onset_error_ms_mean']} ms, max {p['onset_error_ms_max']} ms; offset quantization "
        f"error mean {p['offset_quantization_error_ms_mean']} ms (against the pedal-folded "
        f"performance); velocity error mean {p['velocity_error_mean']}, max "
        f"{p['velocity_error_max']} (one bin ≈ 4).",
        "",
        f"score, {r['tokens']['score']['chorales']} chorales: "
        f"{s['chorale_notes_in']:,} notes in, {s['chorale_notes_out']:,} out; onset error max "
        f"{s['onset_error_beats_max']} beats; velocity error max {s['velocity_error_max']}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
