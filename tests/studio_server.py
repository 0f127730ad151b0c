"""The studio as its users start it — `music-transformer studio` in its own process, on a free
loopback port — and a small HTTP client for its API (urllib: no extra dependency)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from music_transformer.checkpoint import BUNDLED_DIR
from tests.helpers import SHARED_DATA

REPO = Path(__file__).resolve().parents[1]
BUNDLED_PRIMER = BUNDLED_DIR / "primers" / "piano-chpn-op53.mid"


def real_primer() -> Path:
    """A real performance (a MAESTRO sample, with pedal) where the shared data is, else a
    bundled piano excerpt: the tests never skip for want of a primer."""
    maestro = SHARED_DATA / "maestro-samples" / "Maestro_1.mid"
    return maestro if maestro.is_file() else BUNDLED_PRIMER


@contextlib.contextmanager
def studio_server(pieces: Path, *options: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run `music-transformer studio --port 0` and yield its URL; Ctrl-C (SIGINT) at the end,
    which must stop it cleanly within seconds."""
    command = [sys.executable, "-m", "cli", "studio", "--port", "0", "--no-browser",
               "--pieces", str(pieces), *options]  # fmt: skip
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=environment, cwd=REPO)  # fmt: skip
    try:
        line = proc.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:\d+/", line)
        if not found:
            proc.kill()
            raise RuntimeError(f"the studio did not start: {line!r} {proc.stderr.read()!r}")
        yield found.group(0).rstrip("/")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise AssertionError("the studio did not stop within 20 s of Ctrl-C") from None


def call(
    method: str, url: str, body: Any = None, content_type: str | None = None, headers=None
) -> tuple[int, Any]:
    """(status, parsed JSON or raw bytes) of one request; JSON bodies for dicts/lists."""
    data = body
    headers = dict(headers or {})
    if isinstance(body, dict | list):
        data = json.dumps(body).encode()
        headers["Content-Type"] = content_type or "application/json"
    elif content_type:
        headers["Content-Type"] = content_type
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            status, raw, kind = response.status, response.read(), response.headers
    except urllib.error.HTTPError as e:
        status, raw, kind = e.code, e.read(), e.headers
    if kind.get("Content-Type", "").startswith("application/json"):
        return status, json.loads(raw)
    return status, raw


def follow(url: str, job: str, timeout: float = 300) -> list[tuple[str, dict]]:
    """Read a job's server-sent events until it ends; returns (event, data) in order."""
    events: list[tuple[str, dict]] = []
    deadline = time.time() + timeout
    with urllib.request.urlopen(f"{url}/api/jobs/{job}/events", timeout=timeout) as stream:
        name = None
        for raw in stream:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
                if name in ("done", "failed", "cancelled"):
                    return events
            if time.time() > deadline:
                break
    raise AssertionError(f"job {job} did not end: {events[-3:]}")


def wait_state(url: str, job: str, states: tuple[str, ...], timeout: float = 120) -> dict:
    """Poll a job until its state is one of `states`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        _, found = call("GET", f"{url}/api/jobs/{job}")
        if found["state"] in states:
            return found
        time.sleep(0.2)
    raise AssertionError(f"job {job} still {found['state']} after {timeout} s")
