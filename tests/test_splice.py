"""DAW-faithful output: the primer's own file up to the cut, verbatim, and the continuation on
its own track, on the primer's tick grid through its tempo map — on real files."""

from __future__ import annotations

import json
from pathlib import Path

import mido
import pretty_midi
import pytest

from midi_data.presets import load_tokenizer, make_tokenizer
from midi_data.presets import performance as perf
from tests.helpers import cli, retimed_chorale, shared_path


def events_before(track, cut: int) -> list[tuple[int, str]]:
    """(absolute tick, message without its delta) of a track's events before `cut`."""
    out, tick = [], 0
    for m in track:
        tick += m.time
        if tick < cut and m.type != "end_of_track":
            out.append((tick, str(m.copy(time=0))))
    return out


def continue_(primer: Path, out: Path, model: Path, *extra) -> dict:
    args = ["continue", str(primer), "-o", str(out), "--model", str(model), "--seed", "3",
            "-q", "--force", *map(str, extra)]  # fmt: skip
    result = cli(*args)
    assert result.exit_code == 0, result.output
    return json.loads(out.with_suffix(".json").read_text())


def first_onset_after_cut(tok, sidecar_tokens: list[int]) -> float:
    """Seconds from the cut to the continuation's first NOTE_ON, read from its tokens."""
    t = 0.0
    for i in sidecar_tokens:
        if tok.kind[i] == perf.NOTE_ON:
            return t
        t += tok.token_seconds[i]
    raise AssertionError("no note in the continuation")


def check_splice(primer: Path, out: Path, sidecar: dict) -> tuple[mido.MidiFile, mido.MidiFile]:
    a, b = mido.MidiFile(str(primer)), mido.MidiFile(str(out))
    cut = sidecar["midi"]["cut_tick"]
    assert b.ticks_per_beat == a.ticks_per_beat
    assert len(b.tracks) == len(a.tracks) + 1 and b.tracks[-1].name == "Continuation"
    for ta, tb in zip(a.tracks, b.tracks):
        assert events_before(tb, cut) == events_before(ta, cut)  # tick for tick, verbatim
    return a, b


def test_a_piano_piece_keeps_tracks_tempo_map_meter_and_pedal(tiny_run, tmp_path) -> None:
    primer = shared_path("classical-piano", "Chopin", "chp_op18.mid")  # 3/4, 2 tracks, pedal
    out = tmp_path / "waltz.mid"
    sidecar = continue_(primer, out, tiny_run, "--primer-seconds", 8, "--tokens", 200)
    check_splice(primer, out, sidecar)
    pa, pb = pretty_midi.PrettyMIDI(str(primer)), pretty_midi.PrettyMIDI(str(out))
    cut_s = pb.tick_to_time(sidecar["midi"]["cut_tick"])
    n = sum(pa.get_tempo_changes()[0] <= cut_s)  # the tempo map up to the cut is the primer's
    assert (pb.get_tempo_changes()[1][:n] == pa.get_tempo_changes()[1][:n]).all()
    assert pb.time_signature_changes[0].numerator == 3
    assert [i.name for i in pb.instruments][:2] == ["Piano right", "Piano left"]
    assert any(c.number == 64 for c in pb.instruments[1].control_changes)  # the pedal is kept
    # the continuation starts where its own tokens say, through the file's tempo map
    tok = load_tokenizer(tiny_run / "best")
    new = json.loads(out.with_suffix(".json").read_text())["continuation"]["tokens"]
    assert new > 0
    ids = _continuation_ids(tok, out, tiny_run)
    expected = cut_s + first_onset_after_cut(tok, ids)
    # one 10 ms token step, plus the rounding to the file's nearest tick
    assert pb.instruments[-1].notes[0].start == pytest.approx(expected, abs=0.011)


def _continuation_ids(tok, out: Path, run: Path) -> list[int]:
    """Re-create the continuation with the same settings to read its tokens."""
    from music_transformer.generation.loading import load_model, sample_batch
    from music_transformer.generation.primers import read_primer
    from music_transformer.generation.settings import SamplingSettings

    sidecar = json.loads(out.with_suffix(".json").read_text())
    loaded = load_model(run, "cpu")
    primer = read_primer(loaded.tokenizer, sidecar["primer"]["path"], 8)
    settings = SamplingSettings(tokens=200, seed=3, precision=sidecar["sampling"]["precision_used"])
    return sample_batch(loaded, [primer.ids], settings)[0].tokens


def test_a_chorale_with_a_new_meter_and_tempo_changes(tiny_run, bach_midi_dir, tmp_path):
    pytest.importorskip("music21")
    import music21

    source = mido.MidiFile(str(sorted(bach_midi_dir.glob("*.mid"))[0]))
    primer = tmp_path / "three-four.mid"
    tpb = source.ticks_per_beat
    for track in source.tracks:  # rewrite the meter as 3/4 and slow down at beat 6
        for i, m in enumerate(track):
            if m.type == "time_signature":
                track[i] = m.copy(numerator=3, denominator=4)
            if m.type == "set_tempo":
                track[i] = m.copy(tempo=600000)  # 100 BPM
    events, tick = [], 0  # track 0 with one more tempo change, at beat 6
    for m in source.tracks[0]:
        tick += m.time
        events.append((tick, m))
    events.insert(-1, (6 * tpb, mido.MetaMessage("set_tempo", tempo=750000)))
    events.sort(key=lambda e: e[0])
    source.tracks[0] = mido.MidiTrack(
        m.copy(time=t - (events[i - 1][0] if i else 0)) for i, (t, m) in enumerate(events)
    )
    source.save(str(primer))
    out = tmp_path / "out.mid"
    sidecar = continue_(primer, out, tiny_run, "--primer-seconds", 6, "--tokens", 120)
    check_splice(primer, out, sidecar)

    def meters(path: Path) -> list[str]:
        score = music21.converter.parse(str(path))
        return [ts.ratioString for ts in score.recurse().getElementsByClass("TimeSignature")]

    assert meters(primer)[0] == "3/4" and meters(out)[0] == "3/4"  # music21 reads the same
    only = tmp_path / "only.mid"
    continue_(primer, only, tiny_run, "--primer-seconds", 6, "--tokens", 120, "--continuation-only")
    c = mido.MidiFile(str(only))
    conductor = {m.type: m for m in c.tracks[0] if m.is_meta}
    assert conductor["time_signature"].numerator == 3 and conductor["set_tempo"].tempo == 750000
    assert c.tracks[-1].name == "Continuation" and len(c.tracks) == 2


def test_sustain_pedal_option_writes_cc64_where_notes_were_held(tiny_run, tmp_path) -> None:
    primer = shared_path("maestro-samples", "Maestro_1.mid")
    out = tmp_path / "pedal.mid"
    sidecar = continue_(primer, out, tiny_run, "--primer-seconds", 10, "--tokens", 400,
                        "--sustain-pedal", "--max-note-seconds", 8)  # fmt: skip
    assert sidecar["midi"]["pedal_spans"] >= 0
    track = mido.MidiFile(str(out)).tracks[-1]
    pedals = sum(m.type == "control_change" and m.control == 64 for m in track)
    assert pedals == 2 * sidecar["midi"]["pedal_spans"]  # a press and a release each
    unconditional = cli(*["generate", "--out", str(tmp_path / "g"),
        "--model", str(tiny_run), "--tokens", "300", "--sustain-pedal", "-q"])  # fmt: skip
    assert unconditional.exit_code == 0, unconditional.output
    pretty_midi.PrettyMIDI(str(tmp_path / "g" / "sample-1.mid"))


def test_file_clock_follows_the_tempo_map_for_beat_tokens(bach_midi_dir, tmp_path) -> None:
    from midi_data.tempo_map import FileClock

    # 120 BPM for 4 beats, then 60 BPM: a model second is 1 file second, then 2
    primer = retimed_chorale(bach_midi_dir, tmp_path / "p.mid", {0: 500000, 4: 1000000})
    clock = FileClock(make_tokenizer("jsb"), primer)
    first = pretty_midi.PrettyMIDI(str(primer)).get_onsets()[0]  # the grid starts there
    assert clock.model_seconds(first) == pytest.approx(0.0, abs=1e-6)  # float64 tempo map
    four_beats = pretty_midi.PrettyMIDI(str(primer)).get_beats()[4]  # 2.0 s
    assert clock.rate(clock.model_seconds(four_beats) - 0.1) == 1.0
    assert clock.rate(clock.model_seconds(four_beats) + 0.1) == 2.0
    # 1 ms: a round trip may pass through the file's ticks (1/10080 beat: ≤ 0.1 ms here)
    for s in (first + 0.5, 1.7, 2.0, 3.3, 10.0):
        assert clock.file_seconds(clock.model_seconds(s)) == pytest.approx(s, abs=1e-3)
    assert clock.file_seconds(2.5) - clock.file_seconds(2.0) == pytest.approx(1.0, abs=1e-3)
    times = [0.0, 0.3, 1.0, 1.6, 2.5, 7.25]  # both sides of the tempo change
    assert clock.file_times(times) == pytest.approx([clock.file_seconds(t) for t in times])
    same = FileClock(make_tokenizer("performance"), primer)  # performance time is the file's
    assert same.model_seconds(3.3) == 3.3 and same.rate(1.0) == 1.0


def test_a_beat_time_model_counts_the_files_seconds(bach_midi_dir, tmp_path) -> None:
    """jsb tokens count beats at 120 BPM, but the continuation is written on the primer's
    beats and tempo: at 80 BPM, --primer-seconds and --seconds must still be the file's."""
    primer = retimed_chorale(bach_midi_dir, tmp_path / "slow.mid", {0: 750000})  # 80 BPM
    out = tmp_path / "out.mid"
    sidecar = continue_(primer, out, "jsb-relative", "--primer-seconds", 8, "--seconds", 20)
    check_splice(primer, out, sidecar)
    pm = pretty_midi.PrettyMIDI(str(out))
    cut = pm.tick_to_time(sidecar["midi"]["cut_tick"])
    step = 60 / 80 / 4  # a 16th at 80 BPM
    assert 8 - step - 1e-6 < cut <= 8 + 1e-6  # was 12 s: 8 model seconds at 80 BPM
    assert sidecar["primer"]["seconds"] == pytest.approx(cut, abs=1e-3)  # sidecars round to ms
    end = max(n.end for n in pm.instruments[-1].notes)
    assert 0.9 * 20 - step <= end - cut <= 1.1 * 20 + step  # was ≈ 30 s
    assert sidecar["continuation"]["seconds"] == pytest.approx(end - cut, abs=2 * step)


def test_a_batch_of_primers_at_different_tempi_gets_the_seconds_asked(bach_midi_dir, tmp_path):
    """One sampler batch, two rows whose model seconds last 1.5 and 0.75 file seconds."""
    folder = tmp_path / "primers"
    folder.mkdir()
    retimed_chorale(bach_midi_dir, folder / "slow.mid", {0: 750000})  # 80 BPM
    retimed_chorale(bach_midi_dir, folder / "fast.mid", {0: 375000})  # 160 BPM
    args = ["generate", "--out", str(tmp_path / "out"), "--primers", str(folder), "--model",
            "jsb-relative", "--seconds", "12", "--seed", "2", "-q"]  # fmt: skip
    result = cli(*args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert len(manifest["outputs"]) == 2
    for entry in manifest["outputs"]:
        pm = pretty_midi.PrettyMIDI(str(tmp_path / "out" / entry["file"]))
        sidecar = json.loads((tmp_path / "out" / entry["sidecar"]).read_text())
        cut = pm.tick_to_time(sidecar["midi"]["cut_tick"])
        new = max(n.end for n in pm.instruments[-1].notes) - cut
        assert entry["stopped_by"] == "seconds"
        assert 0.9 * 12 - 0.2 <= new <= 1.1 * 12 + 0.2, (entry["file"], new)


def test_a_primer_file_changed_between_splices_is_read_again(bach_midi_dir, tmp_path) -> None:
    """The splice keeps a parsed primer between pieces; a file rewritten meanwhile (another
    tempo) is parsed again, not served from that copy."""
    from midi_data.splice import splice

    tok = make_tokenizer("performance")
    source = sorted(bach_midi_dir.glob("*.mid"))[0]
    primer = tmp_path / "primer.mid"
    primer.write_bytes(source.read_bytes())
    ids = tok.encode(primer)[:40]
    tempos = []
    for bpm in (120, 60):
        mf = mido.MidiFile(str(source))
        for track in mf.tracks:  # the same events at another tempo (same size: in place)
            for m in track:
                if m.type == "set_tempo":
                    m.tempo = mido.bpm2tempo(bpm)
        mf.save(str(primer))
        out = tmp_path / f"out-{bpm}.mid"
        splice(tok, primer, ids, ids[:20], out)
        tempos.append({m.tempo for t in mido.MidiFile(str(out)).tracks for m in t
                       if m.type == "set_tempo"})  # fmt: skip
    assert tempos == [{mido.bpm2tempo(120)}, {mido.bpm2tempo(60)}]


def test_a_tempo_change_after_the_cut_does_not_move_the_continuation(tmp_path) -> None:
    """The output keeps the primer's events up to the cut (its last tempo going on), so a
    tempo change the primer file has after the cut must not place the continuation: each new
    note plays at the seconds the model wrote it (here: the file's own later notes, whose
    tokens count the file's seconds)."""
    from midi_data.splice import splice

    tpb, beats = 480, 16
    mf = mido.MidiFile(ticks_per_beat=tpb)
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500_000, time=0)])
    for beat in range(2 * beats):  # a note per beat: 16 at 120 BPM (8 s), 16 at 60 BPM
        if beat == beats:
            track.append(mido.MetaMessage("set_tempo", tempo=1_000_000, time=0))
        track.append(mido.Message("note_on", note=60 + beat % 12, velocity=80, time=0))
        track.append(mido.Message("note_off", note=60 + beat % 12, velocity=0, time=tpb // 2))
        track.append(mido.Message("note_on", note=0, velocity=0, time=tpb // 2))  # a rest
    mf.tracks.append(track)
    primer = tmp_path / "tempo-change.mid"
    mf.save(str(primer))
    tok = make_tokenizer("performance")
    ids = list(tok.encode(primer))
    k = next(k for k in range(len(ids)) if tok.seconds(ids[:k]) >= 4.0)  # cut at 4 s
    out = tmp_path / "out.mid"
    splice(tok, primer, ids[:k], ids[k:], out)
    real = sorted(n.start for n in pretty_midi.PrettyMIDI(str(primer)).instruments[0].notes)
    (new,) = [i for i in pretty_midi.PrettyMIDI(str(out)).instruments if i.name == "Continuation"]
    played = sorted(n.start for n in new.notes)
    assert len(played) == sum(t >= 4.0 - 1e-6 for t in real) == 24  # 8 at 120 BPM, 16 at 60
    # one tick at 120 BPM is 1/960 s; the tokens' 10-ms grid holds these times exactly
    assert played == pytest.approx([t for t in real if t >= 4.0 - 1e-6], abs=1.1 / (2 * tpb))
