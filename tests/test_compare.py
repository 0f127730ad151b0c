"""`music-transformer compare` end to end: two tiny models (a Transformer and the LSTM
baseline) trained on real Bach chorales in this session, real primers plus a bad one and one
with a script-injecting name; then the page in real headless Chromium, and `compare score`."""

from __future__ import annotations

import base64
import json
import math
import shutil
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pretty_midi
import pytest

from music_transformer.comparison.score import sign_test
from music_transformer.training import train
from tests.browser import Chromium, find_chromium
from tests.helpers import TINY_RUN, cli, cpu_train_options

XSS_NAME = "<img src=x onerror=alert(1)>.mid"
XSS_TRACK = "<script>alert(2)</script>"
SECONDS = 4.0
PRIMER_SECONDS = 6.0


@pytest.fixture(scope="module")
def model_dirs(tiny_run: Path, bach_data_dir: Path, tmp_path_factory) -> list[Path]:
    """The session's tiny Transformer and an LSTM trained the same way (TINY_RUN), in folders
    named for the report's labels (the Transformer copied: the shared run stays read-only)."""
    root = tmp_path_factory.mktemp("compare_models")
    transformer = shutil.copytree(tiny_run, root / "music-transformer")
    lstm = cpu_train_options(
        bach_data_dir, root / "performance-rnn", **{**TINY_RUN, "arch": "lstm"}
    )
    return [transformer, Path(train(lstm))]


@pytest.fixture(scope="module")
def primer_dir(bach_midi_dir: Path, tmp_path_factory) -> Path:
    """Three real chorales, one of them under a script-injecting name and with a
    script-injecting track name, plus an unreadable file."""
    folder = tmp_path_factory.mktemp("primers")
    chorales = sorted(bach_midi_dir.glob("*.mid"))[:2]
    for path in chorales:
        shutil.copyfile(path, folder / path.name)
    pm = pretty_midi.PrettyMIDI(str(sorted(bach_midi_dir.glob("*.mid"))[2]))
    pm.instruments[0].name = XSS_TRACK
    pm.write(str(folder / XSS_NAME))
    # a broken file (a MIDI file cut after 40 bytes) is reported and skipped
    (folder / "bad.mid").write_bytes(chorales[0].read_bytes()[:40])
    return folder


@pytest.fixture(scope="module")
def report(model_dirs: list[Path], primer_dir: Path, bach_data_dir: Path, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report"
    result = cli(
        "compare", "--models", ",".join(map(str, model_dirs)), "--primers", primer_dir,
        "--out", out, "--seconds", SECONDS, "--primer-seconds", PRIMER_SECONDS, "--seed", 7,
        "--data", bach_data_dir, "--split", "valid", "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out, result


def test_report_files(report, model_dirs: list[Path]) -> None:
    out, result = report
    key = json.loads((out / "key.json").read_text())
    labels = key["models"]
    assert labels == [d.name for d in model_dirs]
    assert "bad.mid" in result.stderr and "skipped" in result.stderr  # reported, run went on
    meta = json.loads((out / "report.json").read_text())
    assert len(meta["primers"]) == 3 and len(meta["skipped"]) == 1
    assert meta["sampling"]["seed"] == 7 and meta["pairs"] == len(key["pairs"]) == 3
    # what each model ran: the shared settings, with what they left open (the temperature:
    # none of these models' cards recommends one) filled in per model
    assert meta["sampling"]["temperature"] is None
    assert {m["temperature"] for m in meta["sampling_by_model"].values()} == {1.0}
    assert list(meta["sampling_by_model"]) == labels
    assert meta["audio"]["available"], meta["audio"]  # FluidSynth is on this machine
    assert meta["audio"]["format"] == "mp3"
    for sid, sample in key["samples"].items():
        folder = next(out.glob(f"*/{sid}.mid")).parent
        for suffix in (".mid", ".mp3", ".png"):
            assert (folder / f"{sid}{suffix}").stat().st_size > 0, (sid, suffix)
        assert sample["model"] in labels and sample["tokens"] > 0
    for folder in (out / p["folder"] for p in meta["primers"]):
        assert (folder / "primer.mp3").stat().st_size > 0 and (folder / "real.mid").is_file()
    assert not list(out.rglob("*.wav"))  # compressed audio only
    # the same primer gets the same seed for every model
    seeds = {}
    for sample in key["samples"].values():
        seeds.setdefault(sample["primer"], set()).add(sample["seed"])
    assert all(len(s) == 1 for s in seeds.values())
    # the long-form judge's section (4-s continuations: too short for a 30-s segment)
    assert 'id="longform"' in (out / "index.html").read_text()


def test_audio_is_compressed(report) -> None:
    """MP3 at 128 kbit/s: 16 kB per second of audio, a tenth of the WAV it replaces; what
    keeps a report of 4 primers × 2 models near 5 MB at 15 s each."""
    soundfile = pytest.importorskip("soundfile")
    out, _ = report
    clips = sorted(out.rglob("*.mp3"))
    assert len(clips) == 3 * 4  # per primer: primer, real, one per model
    seconds = 0.0
    for clip in clips:
        data = clip.read_bytes()
        assert data[:3] == b"ID3" or data[:2] == b"\xff\xfb", clip
        info = soundfile.info(str(clip))
        assert info.format == "MP3" and info.samplerate == 44100, info
        seconds += info.duration
    total = sum(c.stat().st_size for c in clips)
    assert total / seconds < 16_500, total / seconds  # bytes per second
    wav_bytes = seconds * 44100 * 2 * 2
    assert total < 0.12 * wav_bytes


def test_samples_continue_their_primer(report, model_dirs) -> None:
    """Every sample starts with its primer's notes and adds new ones after the cut."""
    out, _ = report
    key = json.loads((out / "key.json").read_text())
    for sid in key["samples"]:
        folder = next(out.glob(f"*/{sid}.mid")).parent
        primer = pretty_midi.PrettyMIDI(str(folder / "primer.mid")).instruments[0].notes
        piece = pretty_midi.PrettyMIDI(str(folder / f"{sid}.mid")).instruments[0].notes
        onsets = {(n.pitch, round(n.start, 2)) for n in piece}
        assert all((n.pitch, round(n.start, 2)) in onsets for n in primer), sid
        assert len(piece) > len(primer), f"{sid}: no new notes"
        assert max(n.start for n in primer) <= PRIMER_SECONDS


def test_page_is_blind_and_escaped(report) -> None:
    out, _ = report
    page = (out / "index.html").read_text()
    key = json.loads((out / "key.json").read_text())
    listening = page[page.index('<section class="primer"') : page.index('id="export-section"')]
    for label in key["models"]:  # the title and the metrics table name models, the pairs not
        assert label not in listening, f"model name {label} leaks into the listening part"
    assert XSS_NAME not in page and XSS_TRACK not in page
    assert "&lt;img src=x onerror=alert(1)&gt;.mid" in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page

    class Tags(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tags: list[tuple[str, dict]] = []

        def handle_starttag(self, tag, attrs) -> None:
            self.tags.append((tag, dict(attrs)))

    parser = Tags()
    parser.feed(page)
    assert not [a for _, a in parser.tags if any(k.startswith("on") for k in a)]
    assert [t for t, _ in parser.tags].count("script") == 1
    assert not [a for t, a in parser.tags if t == "img" and a.get("src") == "x"]
    for _tag, attrs in parser.tags:  # nothing from the network
        for name in ("src", "href"):
            if name in attrs:
                assert urlparse(attrs[name]).scheme in ("", "blob"), attrs


def test_metrics(report) -> None:
    out, _ = report
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["primers_with_real_continuation"] == 3
    for label, m in metrics["models"].items():
        nll = m["nll"]["nll"]
        assert math.isfinite(nll) and 0 < nll < math.log(400), (label, m["nll"])
        for name, value in m["paired"]["overlap"].items():
            assert value is None or 0.0 <= value <= 1.0 + 1e-9, (label, name, value)
        assert m["set"] is not None  # 3 primers: set-level comparison is defined
        for value in m["set"]["overlap"].values():
            assert value is None or 0.0 <= value <= 1.0 + 1e-9
    assert metrics["real"]["mean"]["notes_per_second"] > 0


def test_existing_report_needs_force(report, model_dirs, primer_dir) -> None:
    out, _ = report
    result = cli("compare", "--models", ",".join(map(str, model_dirs)), "--primers", primer_dir,
                 "--out", out, "--quiet")  # fmt: skip
    assert result.exit_code == 2 and "--force" in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "args, words",
    [
        (["--primers", "x.mid", "--out", "r"], ["--models"]),
        (
            ["--models", "bach-transformer,bach-lstm", "--primers", "missing-dir", "--out", "r"],
            ["missing-dir"],
        ),
        (["--models", "a", "--primers", ".", "--out", "r"], ["two"]),
        (["score", "no-such-report", "a.json"], ["no-such-report"]),
    ],
)
def test_user_errors_are_one_line(args, words, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.mid").write_bytes(b"")
    result = cli("compare", *args)
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert err.startswith("Error: ") and "\n" not in err, err
    for word in words:
        assert word in err


def test_score_cli(report, tmp_path: Path) -> None:
    out, _ = report
    key = json.loads((out / "key.json").read_text())
    winner = key["models"][0]
    # prefer the first model everywhere but one tie
    pair_ids = sorted(key["pairs"])
    answers = {p: ("A" if key["pairs"][p]["A"] == winner else "B") for p in pair_ids[1:]}
    answers[pair_ids[0]] = "none"
    path = tmp_path / "answers.json"
    doc = {"format": "music-transformer/answers", "report_id": key["report_id"], "answers": answers}
    path.write_text(json.dumps(doc))
    copy = tmp_path / "copy.json"
    copy.write_bytes(path.read_bytes())
    # the same file twice, and a copy of it: one listener, counted once
    result = cli("compare", "score", out, path, path, copy, "--json")
    assert result.exit_code == 0, result.output
    scored = json.loads(result.output)
    assert scored["answer_files"] == 1 and len(scored["duplicate_files"]) == 2
    first = scored["models"][winner]
    assert (first["wins"], first["losses"], first["ties"]) == (len(pair_ids) - 1, 0, 1)
    assert first["p_value"] == pytest.approx(sign_test(len(pair_ids) - 1, 0))
    text = cli("compare", "score", out, path).output
    assert winner in text and "excluded" in text
    doc["report_id"] = "another"
    path.write_text(json.dumps(doc))
    wrong = cli("compare", "score", out, path)
    assert wrong.exit_code == 2 and "another" in wrong.stderr


# --- the page in headless Chromium -------------------------------------------------------


def test_page_in_chromium(report, tmp_path: Path) -> None:
    out, _ = report
    chrome = Chromium(find_chromium(), tmp_path / "profile")
    try:
        target = chrome.send("Target.createTarget", url="about:blank")["targetId"]
        session = chrome.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        downloads = tmp_path / "downloads"
        downloads.mkdir()
        chrome.send("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(downloads))
        for domain in ("Page", "Runtime", "Log"):
            chrome.send(f"{domain}.enable", session)
        chrome.send("Emulation.setDeviceMetricsOverride", session, width=1280, height=900,
                    deviceScaleFactor=1, mobile=False)  # fmt: skip
        chrome.send("Page.navigate", session, url=(out / "index.html").as_uri())
        chrome.wait_event("Page.loadEventFired")

        def js(expression: str):
            result = chrome.send(
                "Runtime.evaluate", session, timeout=30,
                expression=expression, awaitPromise=True, returnByValue=True,
            )  # fmt: skip
            assert "exceptionDetails" not in result, result
            return result["result"].get("value")

        # every <audio> points at an existing file and Chromium can read its header
        audio = js("""Promise.all([...document.querySelectorAll('audio')].map(a =>
            new Promise(done => {
              const report = () => done([a.currentSrc || a.src, a.readyState, !!a.error]);
              if (a.readyState >= 1 || a.error) { report(); return; }
              a.addEventListener('loadedmetadata', report); a.addEventListener('error', report);
              a.load();
            })))""")
        key = json.loads((out / "key.json").read_text())
        primers = len(json.loads((out / "report.json").read_text())["primers"])
        assert len(audio) == 2 * primers + 2 * len(key["pairs"])  # primer, real, A and B
        for src, ready, error in audio:
            path = Path(unquote(urlparse(src).path))
            assert path.is_file(), src
            assert ready >= 1 and not error, (src, ready, error)
        js("document.querySelectorAll('img').forEach(i => { i.loading = 'eager'; })")
        images = js("""Promise.all([...document.images].map(i => i.decode().then(
            () => [i.getAttribute('src'), i.naturalWidth], () => [i.getAttribute('src'), 0])))""")
        assert images and all(width > 0 for _, width in images), images
        # Everything open (piano rolls, real continuations, metrics): nothing is wider than a
        # 1280 px window, the tables fit without scrolling, and the rolls are shown unscaled
        # or smaller, their labels readable.
        layout = js("""(() => {
            document.querySelectorAll('details').forEach(d => { d.open = true; });
            const tables = [...document.querySelectorAll('table')];
            return {
              page: document.documentElement.scrollWidth,
              window: window.innerWidth,
              tables: tables.map(t => [t.getBoundingClientRect().right, t.scrollWidth,
                                       t.clientWidth]),
              rolls: [...document.images].map(i => i.getBoundingClientRect().width),
              why: [...document.querySelectorAll('ol.why li')].map(li => li.textContent),
            };
        })()""")
        assert layout["window"] == 1280 and layout["page"] <= 1280, layout
        assert len(layout["tables"]) == 3
        for right, scroll, client in layout["tables"]:
            assert right <= 1280 and scroll <= client + 1, layout["tables"]
        assert all(600 < width <= 1162 for width in layout["rolls"]), layout["rolls"]
        shot = chrome.send(
            "Page.captureScreenshot", session, format="png", captureBeyondViewport=True
        )
        (tmp_path / "page.png").write_bytes(base64.b64decode(shot["data"]))  # for a failure
        # the injected name is text, not an element; no dialog opened
        assert js("document.querySelector('img[src=\"x\"]') === null")
        names = js("[...document.querySelectorAll('h2 .name')].map(e => e.textContent)")
        assert XSS_NAME in names
        # choose: prefer the first model in every pair, then export
        winner = key["models"][0]
        for pid, pair in key["pairs"].items():
            side = "A" if pair["A"] == winner else "B"
            js(f"document.querySelector('.pair[data-pair=\"{pid}\"] input[value=\"{side}\"]')"
               ".click()")  # fmt: skip
        js("document.getElementById('export').click()")
        exported = json.loads(js("document.getElementById('answers-json').value"))
        assert len(exported["answers"]) == len(key["pairs"])
        deadline = time.time() + 10
        while not list(downloads.glob("answers-*.json")) and time.time() < deadline:
            time.sleep(0.1)
        files = list(downloads.glob("answers-*.json"))
        assert files, "the export did not download a file"
        assert json.loads(files[0].read_text())["answers"] == exported["answers"]
        dialogs = [e for e in chrome.events if e.get("method") == "Page.javascriptDialogOpening"]
        errors = [e for e in chrome.events if e.get("method") == "Runtime.exceptionThrown"]
        assert not dialogs and not errors, dialogs or errors
    finally:
        chrome.close()
    result = cli("compare", "score", out, files[0], "--json")
    assert result.exit_code == 0, result.output
    scored = json.loads(result.output)["models"][key["models"][0]]
    assert scored["wins"] == len(key["pairs"]) and scored["losses"] == 0
    assert scored["preference_rate"] == 1.0
