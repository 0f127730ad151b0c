"""The studio in a real browser: Debian's Chromium, headless, driven over the DevTools protocol
(tests/browser.py) with real mouse clicks. A new user's session: open the page, drop in their
own MIDI, generate two candidates, play one, continue from it twice, undo to an earlier take,
export the MIDI — which keeps their primer's events — while the page fetches nothing from
anywhere but the studio and logs no error. The screenshot is checked: the roll is drawn.

STUDIO_SCREENSHOT=PATH also saves the screenshot there (how docs/studio.png was made).
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import time
from pathlib import Path

import mido
import numpy as np
import pytest

from midi_data.tempo_map import TempoMap, absolute_events
from tests.browser import Chromium, find_chromium
from tests.studio_server import real_primer, studio_server

pytestmark = pytest.mark.slow
WIDTH, HEIGHT = 1280, 1000
SECONDS, CANDIDATES, PRIMER_SECONDS = 4, 2, 6


class Page:
    """One tab of `chrome`, with the few things a test of a page needs."""

    def __init__(self, chrome: Chromium, downloads: Path):
        self.chrome = chrome
        target = chrome.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = chrome.send("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        chrome.send("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(downloads))
        for domain in ("Page", "Runtime", "Log", "Network", "DOM"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT,
                  deviceScaleFactor=1, mobile=False)  # fmt: skip

    def send(self, method: str, **params):
        return self.chrome.send(method, self.session, **params)

    def js(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, awaitPromise=True,
                           returnByValue=True)  # fmt: skip
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def until(self, expression: str, timeout: float = 120, what: str = ""):
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.2)
        message = self.js("document.getElementById('message').textContent")
        raise AssertionError(f"timed out waiting for {what or expression} (page says {message!r})")

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element (a user gesture, which playing
        audio needs)."""
        box = self.js(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
            e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect();
            return [r.x + r.width / 2, r.y + r.height / 2]; }})()""")
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left",
                      clickCount=1)  # fmt: skip

    def set_values(self, values: dict[str, object]) -> None:
        for element, value in values.items():
            self.js(f"document.getElementById('{element}').value = {json.dumps(str(value))}")

    def screenshot(self) -> np.ndarray:
        """(H, W, 3) uint8 of the viewport."""
        from PIL import Image

        shot = self.send("Page.captureScreenshot", format="png")
        self.png = base64.b64decode(shot["data"])
        return np.asarray(Image.open(io.BytesIO(self.png)).convert("RGB"))


def cards(page: Page) -> list[str]:
    return page.js(
        "[...document.querySelectorAll('#candidate-list .card')].map(c => c.dataset.node)"
    )


def wait_for_candidates(page: Page, parent: str, before: set[str]) -> list[str]:
    """Wait until the job has ended and the current take's new candidates are shown."""
    page.until("document.getElementById('cancel').hidden", what="the job to end")
    page.until(f"""(() => {{ const c = [...document.querySelectorAll('#candidate-list .card')];
        return c.length === {CANDIDATES} && c.every(x => !{json.dumps(sorted(before))}
        .includes(x.dataset.node)); }})()""", what="new candidates")  # fmt: skip
    shown = cards(page)
    nodes = page.js("state.piece.nodes")
    assert all(nodes[n]["parent"] == parent for n in shown), (parent, shown)
    return shown


def drawn_pixels(canvas: str, page: Page) -> int:
    """Pixels of the canvas that notes coloured (saturated), counted in the page itself."""
    return page.js(f"""(() => {{ const c = document.querySelector({json.dumps(canvas)});
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
        for (let i = 0; i < d.length; i += 4) {{
          const hi = Math.max(d[i], d[i+1], d[i+2]), lo = Math.min(d[i], d[i+1], d[i+2]);
          if (hi - lo > 40) n++; }}
        return n; }})()""")


def test_a_session_in_chromium(tmp_path: Path) -> None:
    exe = find_chromium()
    from midi_data.render import RenderError, find_renderer

    try:
        find_renderer(audio_format="mp3")
        audio = True
    except RenderError:
        audio = False  # the page must then say so in one line, and go on
    started = time.time()
    primer = tmp_path / "my piece.mid"
    shutil.copyfile(real_primer(), primer)
    not_midi = tmp_path / "notes.mid"
    not_midi.write_text("these are my notes, not a MIDI file")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with studio_server(tmp_path / "pieces") as url:
        chrome = Chromium(exe, tmp_path / "profile")
        try:
            page = Page(chrome, downloads)
            page.send("Page.navigate", url=url + "/")
            page.until("document.querySelectorAll('#model option').length > 0", what="models")
            # a file that is not MIDI first: one line in the page, and nothing else happens
            root = page.send("DOM.getDocument")["root"]["nodeId"]
            node = page.send("DOM.querySelector", nodeId=root, selector="#file")["nodeId"]
            page.send("DOM.setFileInputFiles", nodeId=node, files=[str(not_midi)])
            page.until("document.getElementById('message').textContent.includes('not a "
                       "standard MIDI file')", what="the one-line error")  # fmt: skip
            assert page.js("document.getElementById('piece').hidden")
            # then a user's own file, chosen in the file dialog
            page.send("DOM.setFileInputFiles", nodeId=node, files=[str(primer)])
            page.until("!document.getElementById('piece').hidden", what="the piece")
            page.until("state.rolls.get(document.getElementById('current-roll'))", what="roll")
            assert drawn_pixels("#current-roll", page) > 2000  # the primer, at once
            page.set_values({"primer-seconds": PRIMER_SECONDS, "seconds": SECONDS,
                             "candidates": CANDIDATES, "seed": 5})  # fmt: skip
            page.click("#generate")
            first = wait_for_candidates(page, "root", set())
            assert page.js("document.getElementById('seed').value") == "5"

            # play the first candidate from a few seconds before its cut
            page.click(f"#candidate-list .card[data-node='{first[0]}'] .play")
            sel = f"document.querySelector(\"#candidate-list .card[data-node='{first[0]}'] audio\")"
            if audio:
                page.until(f"!{sel}.paused && {sel}.currentTime > 0", 60, "audio to play")
                cut = page.js(f"state.piece.nodes['{first[0]}'].cut")
                assert page.js(f"{sel}.currentTime") >= cut - 3 - 0.5
                page.js(f"{sel}.pause()")
            else:
                page.until("document.getElementById('message').textContent.includes('no audio')")

            # continue from it, and from the first of the next candidates again
            page.click(f"#candidate-list .card[data-node='{first[0]}'] .continue")
            second = wait_for_candidates(page, first[0], set(first))
            page.click(f"#candidate-list .card[data-node='{second[0]}'] .continue")
            third = wait_for_candidates(page, second[0], set(second))
            assert page.js("state.piece.current") == second[0]
            # undo: back to the first take, whose candidates show again; every take is kept
            page.click("#undo")
            page.until(f"state.piece.current === '{first[0]}'", what="undo")
            page.until(
                f"document.querySelectorAll('#candidate-list .card').length === {CANDIDATES}"
            )
            assert sorted(cards(page)) == sorted(second)
            tree = page.js(
                "[...document.querySelectorAll('#tree button')].map(b => b.dataset.node)"
            )
            assert sorted(tree) == sorted(["root", *first, *second, *third])
            assert (
                page.js("document.querySelector('#tree button.current').dataset.node") == first[0]
            )

            # export the take we are on
            page.until("state.rolls.get(document.getElementById('current-roll')).data.node === "
                       f"'{first[0]}'")  # fmt: skip
            page.click("#export-midi")
            deadline = time.time() + 30
            while not list(downloads.glob("*.mid")) and time.time() < deadline:
                time.sleep(0.2)
            (exported,) = list(downloads.glob("*.mid"))
            check_export(exported, primer, page.js(f"state.piece.nodes['{first[0]}'].cut"))

            # listen blind: A and B from two models, a preference, the reveal, the export
            page.set_values({"seconds": 3})
            page.click("#blind-start")
            page.until("document.querySelectorAll('#trials .card').length === 2", what="A/B")
            page.until("document.getElementById('cancel').hidden", what="the trial to end")
            titles = page.js("[...document.querySelectorAll('#trials h3')].map(h => h.textContent)")
            assert [t.split(": ")[1] for t in titles] == ["A", "B"]  # no model named yet
            page.click("#trials .card .choose[data-side='A']")
            page.until("document.querySelector('#trials .choose').textContent.includes('✔')")
            page.click("#reveal")
            page.until("document.querySelector('#trials h3').textContent.includes('=')")
            titles = page.js("[...document.querySelectorAll('#trials h3')].map(h => h.textContent)")
            assert sorted(t.split(" = ")[1] for t in titles) == ["piano-lstm", "piano-transformer"]
            page.click("#blind-export")
            page.until("!document.getElementById('blind-result').hidden", what="the export")
            assert "compare score" in page.js("document.getElementById('blind-result').textContent")

            page.js("window.scrollTo(0, 0)")
            pixels = page.screenshot()
            box = page.js("""(() => { const r = document.getElementById('current-roll')
                .getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; })()""")
            x, y, w, h = (int(v) for v in box)
            area = pixels[y : y + h, x : x + w].astype(int)  # (h, w, 3)
            coloured = (area.max(axis=2) - area.min(axis=2)) > 40
            assert coloured.sum() > 2000, "the roll in the screenshot is blank"
            (tmp_path / "studio.png").write_bytes(page.png)
            if os.environ.get("STUDIO_SCREENSHOT"):
                Path(os.environ["STUDIO_SCREENSHOT"]).write_bytes(page.png)

            check_requests_and_errors(chrome.events, url, audio)
        finally:
            chrome.close()
    print(f"browser session: {time.time() - started:.1f} s")


def check_export(exported: Path, primer: Path, cut: float) -> None:
    """The primer's events verbatim before the cut, the take on a track of its own."""
    mine, theirs = mido.MidiFile(str(exported)), mido.MidiFile(str(primer))
    cut_tick = TempoMap(theirs).to_tick(cut) - 2
    assert len(mine.tracks) == len(theirs.tracks) + 1
    for a, b in zip(mine.tracks, theirs.tracks):
        before = [e for e in events(b) if e[0] < cut_tick]
        assert events(a)[: len(before)] == before
    assert mine.tracks[-1].name == "Continuation"
    assert sum(m.type == "note_on" for m in mine.tracks[-1]) > 0


def events(track) -> list[tuple[int, str]]:
    return [(t, str(m)) for t, m in absolute_events(track) if m.type != "end_of_track"]


def refused(entry: dict, audio: bool) -> bool:
    """A console line about a request the test made fail on purpose: the upload of a file
    that is not MIDI (400), audio without FluidSynth (503)."""
    url = entry.get("url", "")
    return "name=notes.mid" in url or (not audio and "/audio" in url)


def check_requests_and_errors(events: list[dict], url: str, audio: bool) -> None:
    requests = [e["params"]["request"]["url"] for e in events
                if e.get("method") == "Network.requestWillBeSent"]  # fmt: skip
    outside = [r for r in requests if not (r.startswith(url + "/") or r.startswith("data:"))]
    assert requests and not outside, outside
    errors = [e for e in events if e.get("method") == "Runtime.exceptionThrown"]
    errors += [e for e in events if e.get("method") == "Log.entryAdded"
               and e["params"]["entry"]["level"] == "error"
               and not refused(e["params"]["entry"], audio)]  # fmt: skip
    errors += [e for e in events if e.get("method") == "Runtime.consoleAPICalled"
               and e["params"]["type"] == "error"]  # fmt: skip
    assert not errors, errors
