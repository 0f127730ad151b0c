"""The `jsb` grid preset: JSB Chorales JSON → prepared data with the official split, grid ↔
tokens ↔ MIDI round trips on the real pieces, MIDI primers into four voices, robust decoding."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import symusic

from midi_data import DataError, MidiReadError, load_tokenizer, make_tokenizer, open_data
from midi_data.jsb import REST, STEP_SECONDS, midi_to_grid, read_grid_json
from midi_data.shards import prepare
from tests.helpers import SHARED_DATA, cli, shared_path

JSB_JSON = SHARED_DATA / "jsb-chorales" / "Jsb16thSeparated.json"
OFFICIAL = {"train": 229, "valid": 76, "test": 77}


@pytest.fixture(scope="module")
def jsb_pieces() -> dict[str, list[np.ndarray]]:
    shared_path("jsb-chorales", "Jsb16thSeparated.json")  # or skip
    return read_grid_json(JSB_JSON)


@pytest.fixture(scope="module")
def jsb_data(jsb_pieces, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("jsb") / "data"
    prepare([str(JSB_JSON)], out, preset="jsb", workers=1, progress=False)
    return out


def trim(grid: np.ndarray) -> np.ndarray:
    """The grid without leading and trailing all-rest steps (MIDI cannot keep them)."""
    sounding = np.nonzero((grid != REST).any(axis=1))[0]
    return grid[sounding[0] : sounding[-1] + 1]


def test_prepare_keeps_the_official_split(jsb_pieces, jsb_data: Path) -> None:
    data = open_data(jsb_data)
    assert {s: data.num_pieces(s) for s in OFFICIAL} == OFFICIAL
    assert data.manifest["official_split_sources"] == [str(JSB_JSON)]
    tok = data.tokenizer
    for split, grids in jsb_pieces.items():
        pieces = data.pieces(split)
        assert len(pieces) == len(grids)
        for grid, piece in zip(grids, pieces):  # file order kept, each piece [BOS] … [EOS]
            assert piece[0] == tok.bos_id and piece[-1] == tok.eos_id
            assert np.array_equal(tok.decode_grid(piece), grid)
    entries = data.manifest["files"]
    assert [e["path"] for e in entries if e["split"] == "valid"][:2] == ["valid/0000", "valid/0001"]
    assert data.manifest["skipped"] == 0
    # ≈ 4 tokens per step: the README's 220,912 train tokens, plus BOS and EOS per piece
    assert data.num_tokens("train") == 4 * sum(len(g) for g in jsb_pieces["train"]) + 2 * 229


def test_training_windows_start_on_beats(jsb_data: Path) -> None:
    # Every window starts with BOS or a step's last (bass) token, as evaluation windows of a
    # length divisible by 4 do, so the token at window position i ≥ 1 is voice (i − 1) mod 4
    # (a window starting mid-step would leave the model to guess which voice comes next);
    # and it starts on a quarter-note beat (16 tokens apart), so positions tell the beat.
    from midi_data import WindowBatches

    data = open_data(jsb_data)
    tok = data.tokenizer
    where: dict[tuple[int, ...], set[int]] = {}  # first 8 tokens → their offsets in pieces
    for piece in data.pieces("train"):
        for k in range(len(piece) - 8):
            where.setdefault(tuple(piece[k : k + 8].tolist()), set()).add(k)
    starts = set()
    for step in range(20):
        for row in WindowBatches(data, seq_len=64, batch_size=8, seed=5, augment=False)[step]:
            row = row.numpy()
            grid = tok.decode_grid(row[1:])
            # decoding from the window's second token (voice S) reproduces the piece's grid: a
            # shifted phase would put bass pitches in the soprano line and fail this check.
            assert np.all((grid[:, 0] == REST) | (grid[:, 0] >= grid[:, 3]))
            offsets = where[tuple(row[:8].tolist())]
            assert any(k % 16 == 0 for k in offsets), sorted(offsets)[:5]
            starts.add(min(offsets))
    assert len(starts) > 1 and max(starts) > 0  # mid-piece windows were drawn too


def test_tokenizer_file_round_trips_ids(jsb_data: Path, tmp_path: Path) -> None:
    tok = load_tokenizer(jsb_data)
    fresh = make_tokenizer("jsb")
    assert tok.vocab == fresh.vocab and tok.vocab_size == 50  # 46 pitches + rest + 3 specials
    saved = json.loads((jsb_data / "tokenizer.json").read_text())
    assert saved["options"]["pitches"] == list(range(36, 82))
    # a tokenizer with another pitch list keeps its own ids through save/load
    narrow = make_tokenizer("jsb", pitches=list(range(48, 73)))
    narrow.save(tmp_path / "tokenizer.json")
    again = load_tokenizer(tmp_path)
    assert again.vocab == narrow.vocab and again.vocab != tok.vocab
    grid = np.array([[72, 67, 60, 48], [REST, 65, 60, 50]])
    assert again.encode_grid(grid) == narrow.encode_grid(grid)


def test_round_trip_grid_tokens_midi_on_every_piece(jsb_pieces) -> None:
    tok = make_tokenizer("jsb")
    failures = []
    for split, grids in jsb_pieces.items():
        for i, grid in enumerate(grids):
            ids = tok.encode_grid(grid)
            pm = tok.decode(ids)
            again = tok.decode_grid(tok.encode(pm))
            if not (np.array_equal(tok.decode_grid(ids), grid)
                    and np.array_equal(again, trim(grid))):  # fmt: skip
                failures.append(f"{split}[{i}]")
    assert not failures, f"round trip changed {len(failures)} pieces: {failures[:10]}"


def test_decoding_merges_repeated_pitches_into_held_notes(jsb_pieces) -> None:
    grid = jsb_pieces["valid"][3]
    pm = make_tokenizer("jsb").decode(make_tokenizer("jsb").encode_grid(grid))
    assert [inst.name for inst in pm.instruments] == ["Soprano", "Alto", "Tenor", "Bass"]
    for v, inst in enumerate(pm.instruments):
        line = grid[:, v]
        changes = np.concatenate([[True], line[1:] != line[:-1]])
        assert len(inst.notes) == int((changes & (line != REST)).sum())
        for note in inst.notes:  # each note spans a run of one pitch, on the 16th grid
            a, b = round(note.start / STEP_SECONDS), round(note.end / STEP_SECONDS)
            assert (line[a:b] == note.pitch).all()
            assert b == len(line) or line[b] != note.pitch


def test_token_seconds_transpose_and_stretch(jsb_pieces) -> None:
    tok = make_tokenizer("jsb")
    grid = jsb_pieces["train"][0]
    ids = np.asarray(tok.encode_grid(grid))
    assert tok.seconds(ids) == pytest.approx(len(grid) * STEP_SECONDS)  # float64 sum: rel 1e-6
    assert tok.seconds([tok.bos_id, tok.eos_id, tok.pad_id]) == 0
    assert tok.stretch(ids, 1.05).tolist() == ids.tolist()
    lo, hi = tok.pitch_range(ids)
    shift = 2 if hi + 2 <= 81 else -2
    moved = tok.transpose(ids, shift)
    expected = np.where(grid == REST, REST, grid + shift)
    assert np.array_equal(tok.decode_grid(moved), expected)  # rests stay rests
    assert tok.transpose(ids, 81 - lo + 1) is None  # past the vocabulary's top
    assert set(tok.transpositions(ids)) == {
        k for k in range(-3, 4) if lo + k >= 36 and hi + k <= 81
    }


@pytest.mark.parametrize("seed", range(5))
def test_decode_never_raises_on_random_ids(seed: int, tmp_path: Path) -> None:
    tok = make_tokenizer("jsb")
    rng = np.random.default_rng(seed)
    for length in (0, 1, 3, 5, 999):
        ids = rng.integers(-3, tok.vocab_size + 3, size=length)
        grid = tok.decode_grid(ids)
        assert grid.shape[1] == 4 and ((grid == REST) | ((grid >= 36) & (grid <= 81))).all()
        pm = tok.decode(ids)
        assert len(pm.instruments) == 4
        tok.write_midi(ids, tmp_path / "random.mid")
        back = pretty_midi.PrettyMIDI(str(tmp_path / "random.mid"))
        assert sum(map(len, (i.notes for i in back.instruments))) == sum(
            map(len, (i.notes for i in pm.instruments))
        )


def test_bos_and_eos_realign_a_partial_step() -> None:
    tok = make_tokenizer("jsb")
    a, b = (
        tok.encode_grid(np.array([[72, 67, 60, 48]])),
        tok.encode_grid(np.array([[71, 67, 62, 43]])),
    )
    ids = [*a[:3], tok.eos_id, tok.bos_id, *b, tok.pad_id, 9999, -1]  # a step cut short
    assert tok.decode_grid(ids).tolist() == [[72, 67, 60, REST], [71, 67, 62, 43]]


def satb(path: Path) -> bool:
    """Whether a music21 chorale MIDI has exactly the four sung parts."""
    names = [i.name for i in pretty_midi.PrettyMIDI(str(path)).instruments if i.notes]
    return names == ["Soprano", "Alto", "Tenor", "Bass"]


def test_encode_a_real_chorale_into_four_voices(bach_midi_dir: Path) -> None:
    tok = make_tokenizer("jsb")
    path = next(p for p in sorted(bach_midi_dir.glob("*.mid")) if satb(p))
    grid = midi_to_grid(path)
    pm = pretty_midi.PrettyMIDI(str(path))
    parts = sorted(
        (i for i in pm.instruments if i.notes), key=lambda i: -np.mean([n.pitch for n in i.notes])
    )
    assert len(parts) == 4
    # each voice holds its part's pitches, S above B at almost every step
    for v, part in enumerate(parts):
        assert set(grid[:, v][grid[:, v] != REST]) == {n.pitch for n in part.notes}
    both = (grid[:, 0] != REST) & (grid[:, 3] != REST)
    assert (grid[both, 0] > grid[both, 3]).mean() > 0.95
    beats = len(pm.get_beats())
    assert abs(len(grid) - 4 * beats) <= 8  # 16th steps of the file's own beats
    ids = tok.encode(path)
    assert len(ids) == 4 * len(grid) and np.array_equal(tok.decode_grid(ids), grid)
    # merged into one track, the voices come back by pitch order at nearly every step
    score = symusic.Score(str(path))
    merged = symusic.Score(score.ticks_per_quarter)
    merged.tempos = score.tempos
    track = symusic.Track(program=0)
    for t in score.tracks:
        track.notes.extend(t.notes)
    merged.tracks.append(track)
    again = midi_to_grid(merged)
    assert again.shape == grid.shape
    full = (grid != REST).all(axis=1)  # where all four sing, `again` is the pitch order
    by_pitch = -np.sort(-grid[full], axis=1)
    assert (again[full] == by_pitch).all(axis=1).mean() > 0.95
    assert (again == grid).all(axis=1).mean() > 0.8  # the rest: voice crossings


def test_too_many_voices_or_no_notes_is_a_clear_error(tmp_path: Path) -> None:
    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(0)
    for beat in range(8):  # six-note chords throughout
        piano.notes += [
            pretty_midi.Note(80, p, beat * 0.5, beat * 0.5 + 0.5) for p in (48, 52, 55, 60, 64, 67)
        ]
    pm.instruments.append(piano)
    pm.write(str(tmp_path / "dense.mid"))
    with pytest.raises(MidiReadError, match=r"dense\.mid: more than four notes"):
        make_tokenizer("jsb").encode(tmp_path / "dense.mid")
    pretty_midi.PrettyMIDI().write(str(tmp_path / "empty.mid"))
    with pytest.raises(MidiReadError, match=r"empty\.mid: no notes"):
        midi_to_grid(tmp_path / "empty.mid")


def test_fewer_than_four_notes_go_to_the_nearest_voices() -> None:
    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(0)
    # 2nd: alto and tenor rest; 3rd: alto and tenor in unison (two notes of one pitch);
    # 4th: the unison as one note, which goes to the nearer voice (alto, last at 64)
    chords = [(72, 67, 60, 48), (74, 48), (72, 64, 64, 48), (71, 64, 43)]
    for i, chord in enumerate(chords):
        piano.notes += [pretty_midi.Note(80, p, i * 0.5, i * 0.5 + 0.5) for p in chord]
    pm.instruments.append(piano)
    grid = midi_to_grid(pm)[::4]  # one step per quarter note
    assert grid.tolist() == [
        [72, 67, 60, 48],
        [74, REST, REST, 48],
        [72, 64, 64, 48],
        [71, 64, REST, 43],
    ]


def test_pitches_outside_the_vocabulary_move_by_octaves() -> None:
    tok = make_tokenizer("jsb")
    ids = tok.encode_grid(np.array([[96, 67, 60, 24]]))
    assert tok.decode_grid(ids).tolist() == [[72, 67, 60, 36]]


def test_mixed_sources_and_other_presets(jsb_pieces, bach_midi_dir: Path, tmp_path: Path) -> None:
    small = {s: [g.tolist() for g in grids[:2]] for s, grids in jsb_pieces.items()}
    (tmp_path / "small.json").write_text(json.dumps(small))
    result = prepare(
        [str(tmp_path / "small.json"), str(bach_midi_dir)], tmp_path / "mixed",
        preset="jsb", workers=1, split="1,0,0", progress=False,
    )  # fmt: skip
    midi_files = len(list(bach_midi_dir.glob("*.mid")))
    assert result.pieces["valid"] == 2 and result.pieces["test"] == 2
    assert result.pieces["train"] == 2 + midi_files - len(result.skipped)
    # another preset tokenizes the grids' MIDI rendering, still on the official split
    score = prepare([str(tmp_path / "small.json")], tmp_path / "score", preset="score",
                    workers=1, progress=False)  # fmt: skip
    assert score.pieces == {"train": 2, "valid": 2, "test": 2} and not score.skipped


def test_json_in_another_format_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "notes.json"
    bad.write_text(json.dumps({"pieces": [[60, 62]]}))
    with pytest.raises(DataError, match="not a four-voice grid file"):
        prepare([str(bad)], tmp_path / "out", preset="jsb", progress=False)
    bad.write_text(json.dumps({"train": [[[60, 62, 64]]]}))
    result = cli(*["prepare", str(bad), "--out", str(tmp_path / "o"), "-q"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"Error: {bad}: train[0] is not a non-empty list of [S, A, T, B] steps"
    ]
    assert not (tmp_path / "out").exists() and not (tmp_path / "o").exists()
