"""Reading odd MIDI files, and cropping."""

from __future__ import annotations

import pretty_midi
import pytest

from midi_data import MidiReadError, crop_seconds, read_midi
from tests.helpers import shared_files

ODD = shared_files("odd-midi", "*.mid*")

# What each odd file must give: a number of notes, or a MidiReadError matching the text.
EXPECTED: dict[str, int | str] = {
    "ValueError_Control168.mid": 6432,  # out-of-range control value, sanitized by symusic
    "RunTimeError_unexpected_EOF.mid": 6085,  # truncated track
    "Issue104_Bizarre_Love_Triangle2.mid": "unreadable MIDI",
    "muspy_negative-ticks-per-beat.mid": "SMPTE",
    "muspy_zero-ticks-per-beat.mid": "time division is 0",
    "muspy_empty.mid": 0,
    "muspy_type2.mid": 0,
    "muspy_ticks-per-beat-480.mid": 0,
    "muspy_pitches.mid": 128,
    "muspy_multichannel.mid": 4,
}


@pytest.mark.parametrize("path", ODD, ids=lambda p: p.name)
def test_odd_file_is_read_or_clearly_refused(path, shared_data, tok):
    expected = EXPECTED.get(path.name, 764)  # the three non-ASCII names hold the same file
    if isinstance(expected, str):
        with pytest.raises(MidiReadError, match=expected) as info:
            read_midi(path)
        message = str(info.value)
        assert message.startswith(str(path)) and "\n" not in message
        with pytest.raises(MidiReadError, match=expected):
            tok.encode(path)
        return
    pm = read_midi(path)
    assert sum(len(i.notes) for i in pm.instruments) == expected
    if expected == 0:
        with pytest.raises(MidiReadError, match="no notes") as info:
            tok.encode(path)
        assert str(path) in str(info.value)
    else:
        assert len(tok.decode(tok.encode(path)).instruments[0].notes) > 0


def test_bytes_input_and_every_pitch(shared_data, tok):
    data = (shared_data / "odd-midi" / "muspy_pitches.mid").read_bytes()
    pm = read_midi(data)
    assert sorted(n.pitch for i in pm.instruments for n in i.notes) == list(range(128))
    # the performance preset keeps the full 0..127 range, not only the piano's 21..108
    back = tok.decode(tok.encode(data))
    assert sorted(n.pitch for n in back.instruments[0].notes) == list(range(128))


def test_not_midi_and_missing(tmp_path):
    (tmp_path / "a.mid").write_bytes(b"RIFF1234 not a midi file")
    with pytest.raises(MidiReadError, match="no MThd header"):
        read_midi(tmp_path / "a.mid")
    (tmp_path / "empty.mid").write_bytes(b"")
    with pytest.raises(MidiReadError, match="empty file"):
        read_midi(tmp_path / "empty.mid")
    with pytest.raises(MidiReadError, match="cannot read file"):
        read_midi(tmp_path / "missing.mid")


def test_crop_seconds(shared_data):
    pm = pretty_midi.PrettyMIDI(str(shared_data / "maestro-samples" / "Maestro_1.mid"))
    start, end = 30.0, 45.0
    cropped = crop_seconds(pm, start, end)
    want = sorted(
        (n.pitch, max(n.start, start) - start, min(n.end, end) - start)
        for n in pm.instruments[0].notes
        if n.end > start and n.start < end
    )
    got = sorted((n.pitch, n.start, n.end) for n in cropped.instruments[0].notes)
    assert len(got) == len(want)
    for (p, s, e), (p2, s2, e2) in zip(want, got):
        # times written back through the file's ticks (≤ 1 tick, well under 1 ms)
        assert p == p2 and abs(s - s2) < 1e-3 and abs(e - e2) < 1e-3
    assert cropped.get_end_time() <= end - start + 1e-3
    # the pedal state at the crop start is restated at 0 s
    before = [c for c in pm.instruments[0].control_changes if c.number == 64 and c.time <= start]
    restated = [c for c in cropped.instruments[0].control_changes if c.time == 0.0]
    assert [c.value for c in restated if c.number == 64] == [before[-1].value]


def test_crop_to_end_and_bad_window(bach_midi_dir):
    pm = read_midi(next(bach_midi_dir.glob("*.mid")))
    length = pm.get_end_time()
    tail = crop_seconds(pm, length - 5)
    assert 4.9 < tail.get_end_time() <= 5.0 + 1e-6
    with pytest.raises(ValueError, match="bad crop window"):
        crop_seconds(pm, 5.0, 2.0)
