"""The studio's JSON API against the real server (`music-transformer studio` on a free loopback
port) and the bundled piano models: a real primer uploaded, two 5-s candidates, a take
continued, the export read back, a restart, the `continue` line replayed, a blind trial scored
by `compare`'s own scorer, bad input refused with a 4xx and one line, cancel and abandon."""

from __future__ import annotations

import io
import shlex
import time
import urllib.parse
from pathlib import Path

import mido
import pretty_midi
import pytest
import soundfile
from click.testing import CliRunner

from cli.main import main
from midi_data.tempo_map import TempoMap, absolute_events
from music_transformer.comparison.score import score_answers
from tests.studio_server import BUNDLED_PRIMER, call, follow, real_primer, studio_server, wait_state

pytestmark = pytest.mark.slow
ABANDON = 3.0  # seconds the module's server lets an unwatched job run
UPLOAD_LIMIT_MB = 1  # the server's MUSIC_TRANSFORMER_MAX_MIDI_MB, to test the limit cheaply


@pytest.fixture(scope="module")
def pieces(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("studio") / "pieces"


@pytest.fixture(scope="module")
def url(pieces: Path):
    env = {"MUSIC_TRANSFORMER_MAX_MIDI_MB": str(UPLOAD_LIMIT_MB)}
    with studio_server(pieces, "--abandon-after", str(ABANDON), env=env) as u:
        yield u


def upload(url: str, path: Path, name: str | None = None) -> tuple[int, dict]:
    name = name or path.name
    query = urllib.parse.quote(name)
    return call("POST", f"{url}/api/pieces?name={query}", path.read_bytes(), "audio/midi")


def generate(url: str, piece: str, **settings) -> tuple[dict, list]:
    status, job = call("POST", f"{url}/api/pieces/{piece}/jobs", settings)
    assert status == 202, job
    events = follow(url, job["id"])
    assert events[-1][0] == "done", events[-1]
    return job, events


def note_events(track) -> list[tuple[int, str]]:
    return [(t, str(m)) for t, m in absolute_events(track) if m.type != "end_of_track"]


@pytest.fixture(scope="module")
def session(url: str) -> dict:
    """One piece: a real primer, two 5-s candidates of its first 6 s, the first continued."""
    primer = real_primer()
    status, piece = upload(url, primer)
    assert status == 201, piece
    assert piece["current"] == "root" and list(piece["nodes"]) == ["root"]
    pid = piece["id"]
    job, events = generate(url, pid, seconds=5, candidates=2, primer_seconds=6, seed=11)
    progress = [d["progress"] for e, d in events if e == "progress"]
    assert progress == sorted(progress) and progress[-1] == pytest.approx(1.0, abs=0.02)
    first, second = events[-1][1]["takes"]
    status, chosen = call("POST", f"{url}/api/pieces/{pid}/current", {"node": first})
    assert status == 200 and chosen["current"] == first
    _, events = generate(url, pid, seconds=5, candidates=1, seed=21)  # from the current take
    (third,) = events[-1][1]["takes"]
    return {"piece": pid, "primer": primer, "takes": [first, second, third], "job": job}


def test_the_tree_of_takes(url: str, session: dict) -> None:
    pid, (t1, t2, t3) = session["piece"], session["takes"]
    _, piece = call("GET", f"{url}/api/pieces/{pid}")
    nodes = piece["nodes"]
    assert nodes[t1]["parent"] == nodes[t2]["parent"] == "root" and nodes[t3]["parent"] == t1
    assert (nodes[t1]["seed"], nodes[t2]["seed"], nodes[t3]["seed"]) == (11, 12, 21)
    for t in (t1, t2, t3):  # ends at a musical point within 10% of the 5 s asked for
        assert 4.5 <= nodes[t]["seconds"] <= 5.5 and nodes[t]["tokens"] > 0
    assert nodes[t1]["cut"] <= 6.0 and nodes[t3]["cut"] == pytest.approx(nodes[t1]["end"], abs=0.02)
    _, notes = call("GET", f"{url}/api/pieces/{pid}/takes/{t3}/notes")
    assert notes["cuts"] == [nodes[t1]["cut"], nodes[t3]["cut"]]
    parts = {n[4] for n in notes["notes"]}
    assert parts == {0, 1, 2}  # the primer, the first take, the second
    assert all((n[0] >= notes["cuts"][0] - 1e-3) == (n[4] > 0) for n in notes["notes"])


def test_export_keeps_the_primer_and_adds_a_track(url: str, session: dict) -> None:
    pid, (t1, _, t3) = session["piece"], session["takes"]
    status, data = call("GET", f"{url}/api/pieces/{pid}/takes/{t3}/midi")
    assert status == 200 and data[:4] == b"MThd"
    exported = mido.MidiFile(file=io.BytesIO(data))
    original = mido.MidiFile(str(session["primer"]))
    _, piece = call("GET", f"{url}/api/pieces/{pid}")
    cut = TempoMap(original).to_tick(piece["nodes"][t1]["cut"]) - 2  # a tick of rounding aside
    assert exported.ticks_per_beat == original.ticks_per_beat
    assert len(exported.tracks) == len(original.tracks) + 2  # one track per take
    kept = 0
    for mine, theirs in zip(exported.tracks, original.tracks):
        before = [e for e in note_events(theirs) if e[0] < cut]
        assert note_events(mine)[: len(before)] == before  # the primer's events verbatim
        kept += sum("note_on" in m for _, m in before)
    assert kept > 20
    assert [t.name for t in exported.tracks[-2:]] == ["Continuation", "Continuation"]
    pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    takes = [i for i in pm.instruments if i.name == "Continuation"]
    cuts = [piece["nodes"][t]["cut"] for t in (t1, t3)]
    assert len(takes) == 2 and all(t.notes for t in takes)
    for take, start in zip(takes, cuts):  # each take on its own track, after its cut
        assert min(n.start for n in take.notes) >= start - 0.02


def test_command_line_makes_the_same_file(url: str, session: dict, tmp_path: Path) -> None:
    pid, t3 = session["piece"], session["takes"][2]
    _, found = call("GET", f"{url}/api/pieces/{pid}/takes/{t3}/command")
    args = shlex.split(found["command"])
    assert args[:2] == ["music-transformer", "continue"] and "--seed" in args
    out = tmp_path / args[args.index("-o") + 1]
    args[args.index("-o") + 1] = str(out)
    result = CliRunner().invoke(main, [*args[1:], "--quiet"])
    assert result.exit_code == 0, result.output
    _, studio_file = call("GET", f"{url}/api/pieces/{pid}/takes/{t3}/midi")
    assert out.read_bytes() == studio_file


def test_audio_of_a_take(url: str, session: dict) -> None:
    from midi_data.render import RenderError, find_renderer

    try:
        find_renderer(audio_format="mp3")
    except RenderError as e:
        status, body = call("GET", f"{url}/api/pieces/{session['piece']}/takes/root/audio")
        assert status == 503 and "no audio" in body["error"], body
        pytest.skip(f"audio itself needs FluidSynth: {e}")
    take = session["takes"][1]
    _, notes = call("GET", f"{url}/api/pieces/{session['piece']}/takes/{take}/notes")
    for path in ("audio", "export.mp3"):  # WAV to listen in the page, MP3 to keep
        status, data = call("GET", f"{url}/api/pieces/{session['piece']}/takes/{take}/{path}")
        assert status == 200, data
        heard = soundfile.info(io.BytesIO(data)).duration  # the primer's cut and the take
        # FluidSynth renders until the last voice has decayed: the soundfont's release and
        # reverb tail (a few seconds for TimGM6mb's piano) follows the last note's end
        assert notes["duration"] <= heard <= notes["duration"] + 5, path


def test_a_restart_loses_nothing(url: str, pieces: Path, session: dict) -> None:
    pid = session["piece"]
    _, before = call("GET", f"{url}/api/pieces/{pid}")
    _, midi = call("GET", f"{url}/api/pieces/{pid}/takes/{session['takes'][2]}/midi")
    (pieces / pid / "takes" / f"{session['takes'][2]}.mid").unlink()  # even a lost take file
    with studio_server(pieces) as again:
        _, listed = call("GET", f"{again}/api/pieces")
        assert pid in [p["id"] for p in listed["pieces"]]
        _, after = call("GET", f"{again}/api/pieces/{pid}")
        assert after == before
        _, rewritten = call("GET", f"{again}/api/pieces/{pid}/takes/{session['takes'][2]}/midi")
        assert rewritten == midi


def test_bad_input_is_one_line_and_4xx(
    url: str, pieces: Path, session: dict, tmp_path: Path
) -> None:
    pid = session["piece"]
    corrupt = tmp_path / "corrupt.mid"
    corrupt.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\xff\xff\xff\xffjunk")
    status, body = upload(url, corrupt)
    assert status == 400 and "corrupt.mid" in body["error"] and "\n" not in body["error"]
    status, body = call("POST", f"{url}/api/pieces?name=x.mid", b"not midi", "audio/midi")
    assert status == 400 and "not a standard MIDI file" in body["error"]
    huge = tmp_path / "huge.mid"
    huge.write_bytes(BUNDLED_PRIMER.read_bytes() + b"\0" * (UPLOAD_LIMIT_MB * 2**20))
    status, body = upload(url, huge)
    assert status == 413 and "MiB" in body["error"]
    _, before = call("GET", f"{url}/api/pieces")
    for name in ("../../escape.mid", "..", "a/b.mid", "a\\b.mid"):
        status, body = upload(url, BUNDLED_PRIMER, name=name)
        assert status == 400 and "plain name" in body["error"], (name, body)
    _, after = call("GET", f"{url}/api/pieces")
    assert after == before and not list(pieces.parent.rglob("escape*"))
    for path in ("/api/pieces/..%2F..%2Fetc", f"/api/pieces/{pid}/takes/..%2Fpiece/notes",
                 f"/api/pieces/{pid}/takes/t999/notes", "/api/pieces/nope"):  # fmt: skip
        status, body = call("GET", url + path)
        assert status == 404 and body["error"], (path, body)
    bad_settings = [
        ({"model": "nope"}, "unknown model"),
        ({"candidates": 9}, "candidates"),
        ({"seconds": -1}, "seconds"),
        ({"seconds": 1e9}, "seconds"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": 2}, "top_p"),
        ({"seed": -5}, "seed"),
        ({"colour": "blue"}, "unknown setting"),
        ({"node": "t999"}, "no take"),
    ]
    for settings, words in bad_settings:
        status, body = call("POST", f"{url}/api/pieces/{pid}/jobs", settings)
        assert 400 <= status < 500 and words in body["error"], (settings, body)
    status, body = call("POST", f"{url}/api/pieces/{pid}/jobs", b"{}", "text/plain")
    assert status == 415  # a page elsewhere cannot send JSON here without asking first
    status, _ = call("GET", f"{url}/api/models", headers={"Host": "attacker.example"})
    assert status == 400  # DNS rebinding: only loopback names are served


def test_cancel_stops_the_loop_and_the_queue_goes_on(url: str, session: dict) -> None:
    pid = session["piece"]
    _, long = call("POST", f"{url}/api/pieces/{pid}/jobs", {"seconds": 600, "candidates": 1})
    _, queued = call("POST", f"{url}/api/pieces/{pid}/jobs", {"seconds": 600, "candidates": 1})
    running = wait_state(url, long["id"], ("running",))
    assert running["state"] == "running"
    _, waiting = call("GET", f"{url}/api/jobs/{queued['id']}")
    assert waiting["state"] == "queued"
    _, cancelled = call("POST", f"{url}/api/jobs/{queued['id']}/cancel")
    assert cancelled["state"] == "cancelled"  # a queued job ends at once
    time.sleep(1.0)
    asked = time.time()
    call("POST", f"{url}/api/jobs/{long['id']}/cancel")
    done = wait_state(url, long["id"], ("cancelled", "done", "failed"), timeout=30)
    assert done["state"] == "cancelled" and time.time() - asked < 10
    assert done["progress"] < 0.5 and done["takes"] == []  # stopped mid-loop, nothing kept
    _, piece = call("GET", f"{url}/api/pieces/{pid}")
    assert len(piece["nodes"]) == 4  # the primer and the three takes, as before


def test_an_abandoned_job_stops(url: str, session: dict) -> None:
    _, job = call("POST", f"{url}/api/pieces/{session['piece']}/jobs", {"seconds": 600})
    time.sleep(ABANDON + 4)  # nobody watches: no event stream, no status request
    _, found = call("GET", f"{url}/api/jobs/{job['id']}")
    assert found["state"] == "cancelled" and "nobody was watching" in found["message"]


def test_a_closed_tab_stops_its_job(url: str, session: dict) -> None:
    """The page's event stream closes (the tab is closed) while the job runs: the server
    hears the disconnect and stops the job once nobody has watched for --abandon-after s."""
    _, job = call("POST", f"{url}/api/pieces/{session['piece']}/jobs", {"seconds": 600})
    stream = urllib.request.urlopen(f"{url}/api/jobs/{job['id']}/events", timeout=60)
    while b"event: progress" not in stream.readline():  # running, and watched
        pass
    stream.close()
    time.sleep(ABANDON + 6)
    _, found = call("GET", f"{url}/api/jobs/{job['id']}")
    assert found["state"] == "cancelled" and "nobody was watching" in found["message"]


def test_blind_trial_scored_as_compare_scores(url: str, session: dict) -> None:
    pid, t1 = session["piece"], session["takes"][0]
    status, job = call("POST", f"{url}/api/pieces/{pid}/blind", {"node": t1, "seconds": 3})
    assert status == 202, job
    events = follow(url, job["id"])
    assert events[-1][0] == "done", events[-1]
    (trial,) = [d["trial"] for e, d in events if e == "trial"]
    assert "models" not in trial
    _, piece = call("GET", f"{url}/api/pieces/{pid}")
    for side in "AB":  # hidden in the tree too
        assert "model" not in piece["nodes"][trial[side]]
    status, chosen = call("POST", f"{url}/api/pieces/{pid}/blind/{trial['id']}", {"choice": "A"})
    assert status == 200 and chosen["choice"] == "A"
    status, body = call("POST", f"{url}/api/pieces/{pid}/blind/{trial['id']}", {"choice": "C"})
    assert status == 400 and "choice" in body["error"]
    _, revealed = call("POST", f"{url}/api/pieces/{pid}/blind/reveal", {})
    models = revealed["trials"][0]["models"]
    assert sorted(models.values()) == ["piano-lstm", "piano-transformer"]
    _, exported = call("POST", f"{url}/api/pieces/{pid}/blind/export", {})
    folder = Path(exported["folder"])
    score = score_answers(folder, [folder / "answers.json"])
    assert score.models[models["A"]].wins == 1 and score.models[models["B"]].losses == 1
