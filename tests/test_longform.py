"""The long-form judge: statistics with known answers on hand-built MIDI, the holds rule on real
music (held-out pieces hold, a looping continuation and an inserted silence do not), sidecars,
the CLI and compare's section."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
from click.testing import CliRunner

from cli.main import main
from midi_data.midi_io import read_score
from midi_data.notes import Notes, notes_from_score
from music_transformer.longform import STATS, Bands, JudgeError, Rule, judge_file, load_corpus
from music_transformer.longform.compare import judge_section
from music_transformer.longform.judge import make_bands
from music_transformer.longform.run import run_judge, summarize
from tests.helpers import shared_path

TICK = 1 / 440  # pretty_midi writes 220 ticks per beat at 120 BPM: times are exact to this
COL = {s: k for k, s in enumerate(STATS)}


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Reference bands are cached under a test folder, never the user's cache."""
    cache = tmp_path_factory.getbasetemp() / "judge-cache"
    monkeypatch.setenv("MUSIC_TRANSFORMER_CACHE", str(cache))


def write_midi(path: Path, notes: list[tuple[float, float, int]], pedal=()) -> Path:
    """(start, end, pitch) notes, velocity 80, optional (time, value) CC64 events."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    piano = pretty_midi.Instrument(0)
    piano.notes = [pretty_midi.Note(80, p, s, e) for s, e, p in notes]
    piano.control_changes = [pretty_midi.ControlChange(64, v, t) for t, v in pedal]
    pm.instruments.append(piano)
    pm.write(str(path))
    return path


WIDE = Bands("wide", np.full(6, -np.inf), np.full(6, np.inf), 0, 0, 0)


def known_piece(tmp_path: Path, pedal=()) -> Path:
    """12 s of primer on C4 every 0.5 s, then 40 notes of 0.25 s every 0.5 s cycling
    C D E F G (12 s … 31.75 s), then nothing until a final note at 45 s."""
    primer = [(0.5 * k, 0.5 * k + 0.25, 60) for k in range(24)]
    cycle = [60, 62, 64, 65, 67]
    tune = [(12 + 0.5 * k, 12.25 + 0.5 * k, cycle[k % 5]) for k in range(40)]
    return write_midi(tmp_path / "known.mid", [*primer, *tune, (45.0, 45.5, 72)], pedal)


def test_statistics_have_their_known_values(tmp_path: Path) -> None:
    judged = judge_file(known_piece(tmp_path), WIDE, Rule(), primer_seconds=12.0)
    assert judged.cut == 12.0 and len(judged.values) == 1  # 45.5 − 12 s: one whole segment
    nps, distinct, silence, two, repeat, drift = judged.values[0]
    assert nps == pytest.approx(40 / 30)
    assert distinct == 5
    assert silence == pytest.approx(42 - 31.75, abs=2 * TICK)  # to the segment's end
    assert two == pytest.approx(16 / 40)  # 8 onsets on each of five pitches
    assert repeat == pytest.approx(1 - 5 / 33)  # 33 8-grams, a cycle of 5 distinct ones
    assert drift == pytest.approx(np.mean([60, 62, 64, 65, 67]) - 60)  # the primer is all C4
    assert not judged.outside.any() and not judged.holds  # 30 s is shorter than 150 s


def test_sustain_pedal_counts_as_sounding(tmp_path: Path) -> None:
    """The pedal held from 31.5 s to 36 s keeps the last notes sounding: the silence shrinks."""
    piece = known_piece(tmp_path, pedal=[(31.5, 127), (36.0, 0)])
    judged = judge_file(piece, WIDE, Rule(), primer_seconds=12.0)
    assert judged.values[0, COL["longest_silence"]] == pytest.approx(42 - 36, abs=2 * TICK)


def triad_loop(start: float = 12.0) -> list[tuple[float, float, int]]:
    """One A-major triad re-struck every 0.5 s for 181 s from `start`: six whole segments."""
    return [(start + 0.5 * k, start + 0.5 * k + 0.4, p) for k in range(362) for p in (57, 61, 64)]


# ----- real music ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def classical_halves(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """Half of the classical pieces (by sorted position) as a reference folder, and the other
    half, never seen by the bands, to judge."""
    root = shared_path("classical-piano")
    files = sorted(root.rglob("*.mid"))
    ref = tmp_path_factory.mktemp("classical-even")
    for f in files[::2]:
        (ref / f.name).symlink_to(f)
    return ref, files[1::2]


def _piece_notes(path: Path) -> Notes:
    return notes_from_score(read_score(path))


def _write_notes(path: Path, notes: Notes) -> Path:
    rows = zip(notes.start.tolist(), notes.end.tolist(), notes.pitch.tolist())
    return write_midi(path, [(s, e, int(p)) for s, e, p in rows if e > s])


def test_real_held_out_pieces_hold_and_a_loop_does_not(classical_halves, tmp_path: Path) -> None:
    ref, held_out = classical_halves
    rule = Rule()
    bands = make_bands(load_corpus(f"even={ref}", workers=1), rule)
    assert bands.real_stretches > 50 and bands.real_holds / bands.real_stretches >= 0.8
    assert bands.lo[COL["register_drift"]] == 0  # a distance: only its upper edge counts
    judged = [judge_file(f, bands, rule, primer_seconds=12.0) for f in held_out]
    long_enough = [j for j in judged if len(j.values) * 30 >= 150]
    rate = sum(j.holds for j in long_enough) / len(long_enough)
    assert len(long_enough) > 50 and rate >= 0.8, rate

    # The first held-out piece's own primer, then one A-major triad re-struck every 0.5 s.
    notes = _piece_notes(long_enough[0].path)
    primer = notes.take(notes.start < 12.0)
    triad = triad_loop()
    rows = list(zip(primer.start.tolist(), np.minimum(primer.end, 12.0).tolist(), primer.pitch))
    loop = write_midi(tmp_path / "loop.mid", [(s, e, int(p)) for s, e, p in rows] + triad)
    looped = judge_file(loop, bands, rule, primer_seconds=12.0)
    assert len(looped.values) == 6 and not looped.holds
    assert looped.outside[:, COL["two_pitch_share"]].all()  # 2/3 of the onsets on two keys
    assert looped.outside[:, COL["distinct_pitches"]].all()
    assert summarize([looped], bands)["two_pitch_in_band"] == 0.0


def test_real_pop_songs_hold(tmp_path: Path) -> None:
    """Bands from 200 POP909 songs; 100 other songs, each after its first 12 s, hold."""
    songs = sorted(shared_path("pop909").glob("*/*.mid"))
    for f in songs[:400:2]:
        (tmp_path / f.name).symlink_to(f)
    rule = Rule()
    bands = make_bands(load_corpus(f"pop={tmp_path}", workers=1), rule)
    judged = [judge_file(f, bands, rule, primer_seconds=12.0) for f in songs[1:400:4]]
    judged = [j for j in judged if len(j.values) * 30 >= 150]
    assert len(judged) > 80 and sum(j.holds for j in judged) / len(judged) >= 0.8


def test_an_inserted_silence_is_flagged(classical_halves, tmp_path: Path) -> None:
    """A held-out real piece with 5 s of nothing inserted 60 s after its primer: that segment
    falls outside on its longest silence, and the summary counts a silence over 3 s."""
    ref, held_out = classical_halves
    rule = Rule()
    bands = make_bands(load_corpus(f"even={ref}", workers=1), rule)
    original = judge_file(held_out[0], bands, rule, primer_seconds=12.0)
    assert original.values[:, COL["longest_silence"]].max() < 3.0
    notes = _piece_notes(held_out[0])
    at = 12.0 + 60.0
    end = np.where(notes.start < at, np.minimum(notes.end, at), notes.end + 5.0)
    start = np.where(notes.start < at, notes.start, notes.start + 5.0)
    gap = _write_notes(tmp_path / "gap.mid", Notes(start, end, notes.pitch, notes.velocity))
    judged = judge_file(gap, bands, rule, primer_seconds=12.0)
    # notes sounding at 72 s end there; the next onset comes 5 s later than it did
    expected = 5.0 + notes.start[notes.start >= at].min() - at
    assert judged.values[2, COL["longest_silence"]] == pytest.approx(expected, abs=2 * TICK)
    assert judged.outside[2, COL["longest_silence"]]
    assert summarize([judged], bands)["silences_over_3s"] >= 1


def test_bands_are_cached_per_file_list(tmp_path: Path) -> None:
    pop = sorted(shared_path("pop909").glob("00*/*.mid"))  # 9 songs: 001 … 009
    ref = tmp_path / "pop"
    ref.mkdir()
    for f in pop:
        (ref / f.name).symlink_to(f)
    first = load_corpus(f"pop={ref}", workers=1)
    again = load_corpus(f"pop={ref}", workers=1)
    assert again.cached and not first.cached  # read back, not measured again
    assert np.allclose(np.nan_to_num(again.values), np.nan_to_num(first.values), atol=1e-4)
    (ref / pop[0].name).unlink()  # the corpus changed: measured afresh
    changed = load_corpus(f"pop={ref}", workers=1)
    assert not changed.cached and len(changed.pieces) == len(pop) - 1


# ----- sidecars, CLI, compare ---------------------------------------------------------------
def test_cut_comes_from_the_sidecar_of_continue(tmp_path: Path) -> None:
    """`continue` writes OUT.json; the judge cuts where it says the primer ends."""
    primer = shared_path("maestro-samples", "Maestro_1.mid")
    out = tmp_path / "gen" / "m1.mid"
    args = ["continue", str(primer), "-o", str(out), "--model", "piano-lstm",
            "--primer-seconds", "12", "--seconds", "2", "--seed", "1", "-q"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    record = json.loads(out.with_suffix(".json").read_text())
    judged = judge_file(out, WIDE, Rule(), primer_seconds=99.0)  # the sidecar wins
    assert judged.cut == pytest.approx(record["primer"]["seconds"])
    assert judged.seconds >= record["continuation"]["seconds"] - 1e-6
    assert len(judged.values) == 0 and not judged.holds


def test_sidecar_seconds_against_the_file(tmp_path: Path) -> None:
    """A sidecar that says 60 s were generated after a 12-s primer, beside a file whose music
    stops at 45.5 s: the silent rest is judged too, and the mismatch is noted."""
    piece = known_piece(tmp_path)
    sidecar = {"primer": {"path": None, "seconds": 12.0, "included": True},
               "continuation": {"seconds": 60.0}}  # fmt: skip
    piece.with_suffix(".json").write_text(json.dumps(sidecar))
    judged = judge_file(piece, WIDE, Rule())
    assert judged.cut == 12.0 and len(judged.values) == 2  # 12 … 72 s
    assert judged.values[1, COL["longest_silence"]] == pytest.approx(72 - 45.5, abs=2 * TICK)
    assert any("sidecar says 60 s" in n for n in judged.notes)
    for bad in ({"continuation": 5}, {"continuation": {"seconds": 1e12}}):
        piece.with_suffix(".json").write_text(json.dumps(bad))
        with pytest.raises(JudgeError, match=r"known\.json"):
            judge_file(piece, WIDE, Rule())


def test_cli_table_picture_and_errors(classical_halves, tmp_path: Path, shared_data) -> None:
    ref, held_out = classical_halves
    files = tmp_path / "files"
    files.mkdir()
    for f in held_out[:3]:
        (files / f.name).symlink_to(f)
    runner = CliRunner()
    args = ["judge", str(files), "-r", f"classical={ref}", "--primer-seconds", "12"]
    result = runner.invoke(main, [*args, "--out", str(tmp_path / "rep")])
    assert result.exit_code == 0, result.output
    assert "classical: holds" in result.output and "real music" in result.output
    for f in held_out[:3]:
        assert f.name in result.output
    png = (tmp_path / "rep" / "judge-classical.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    report = json.loads((tmp_path / "rep" / "judge.json").read_text())
    assert len(report["files"]) == 3 and report["summary"]["classical"]["files"] == 3

    corrupt = shared_data / "odd-midi" / "Issue104_Bizarre_Love_Triangle2.mid"
    bad = runner.invoke(main, [*args, str(corrupt), str(tmp_path / "missing.mid")])
    assert bad.exit_code == 2 and "classical: holds" in bad.output  # the others are judged
    errors = [line for line in bad.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 2 and "Traceback" not in bad.output
    for ref_arg in (str(tmp_path / "nope"), f"x={tmp_path / 'files'}@pop"):
        gone = runner.invoke(main, ["judge", str(files), "-r", ref_arg])
        assert gone.exit_code == 2 and gone.output.count("\n") == 1, gone.output
    no_cut = runner.invoke(main, ["judge", str(files), "-r", f"classical={ref}"])
    assert no_cut.exit_code == 2 and "--primer-seconds" in no_cut.output


def test_several_references_assign_files(classical_halves, tmp_path: Path) -> None:
    ref, held_out = classical_halves
    folder = tmp_path / "pop"
    folder.mkdir()
    (folder / "a.mid").symlink_to(held_out[0])
    other = tmp_path / "elsewhere.mid"
    other.symlink_to(held_out[1])
    refs = [f"classical={ref}", f"pop={ref}"]
    report = run_judge([folder, other], refs, assign=["classical=*elsewhere*"], primer_seconds=12)
    assert {Path(j.path).name: j.reference for j in report.judged} == {
        "a.mid": "pop",  # by its folder's name
        "elsewhere.mid": "classical",  # by --assign
    }
    unassigned = run_judge([folder, other], refs, primer_seconds=12)
    assert [Path(p).name for p, _ in unassigned.failed] == ["elsewhere.mid"]


def test_compare_section(classical_halves, tmp_path: Path) -> None:
    ref, held_out = classical_halves
    real = held_out[0]
    loop = write_midi(tmp_path / "loop.mid", triad_loop())
    html = judge_section(tmp_path, ref, {"good": [(real, 12.0)], "loop": [(loop, 12.0)]})
    summary = json.loads((tmp_path / "longform.json").read_text())["summary"]
    assert summary["loop"]["holds"] == 0 and summary["good"]["files"] == 1
    assert "longform-loop.png" in html and (tmp_path / "longform-loop.png").is_file()
    assert judge_section(tmp_path, None, {}) == ""
    assert "No long-form judge" in judge_section(tmp_path, tmp_path / "nope", {})
