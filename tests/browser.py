"""Headless Chromium for the page tests (compare's report page, the studio), driven over the
DevTools protocol on a pipe: no driver binary and no websocket library, nothing downloaded.
Debian's `chromium` package (scripts/setup.sh installs it as root); without it, the tests
skip with the reason."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest


def find_chromium() -> str:
    """The Chromium (or Chrome) executable, or skip: scripts/setup.sh installs it as root."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if exe := shutil.which(name):
            return exe
    pytest.skip(
        "no headless browser found (chromium, chromium-browser or google-chrome on PATH): "
        "install the Debian package 'chromium' (scripts/setup.sh does as root)"
    )


class Chromium:
    """A minimal DevTools-protocol client over --remote-debugging-pipe (fd 3 in, fd 4 out):
    NUL-terminated JSON messages, no websocket library needed."""

    def __init__(self, exe: str, profile: Path, extra: Sequence[str] = ()) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # park the child's ends above 4 so dup2 onto 3 and 4 cannot clobber each other
        high_r, high_w = os.dup2(to_chrome_r, 100), os.dup2(from_chrome_w, 101)
        os.close(to_chrome_r), os.close(from_chrome_w)

        def child_fds() -> None:
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        flags = [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--mute-audio",
            "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--remote-debugging-pipe",
            *extra, "about:blank",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            [exe, *flags], pass_fds=(3, 4, high_r, high_w), preexec_fn=child_fds,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(high_r), os.close(high_w)
        self._buffer, self._id, self.events = b"", 0, []

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            if time.time() > deadline:
                raise TimeoutError("no answer from Chromium")
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, session: str | None = None, timeout: float = 20, **params):
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.time() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 20) -> dict:
        deadline = time.time() + timeout
        for i, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(i)
        while True:
            event = self._read(deadline)
            if event.get("method") == method:
                return event
            self.events.append(event)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.send("Browser.close", timeout=5)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._to_chrome), os.close(self._from_chrome)
