"""`music-transformer studio` as a command: one-line errors with exit 2 before anything is
served, and Ctrl-C stops a server that is in the middle of generating."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import cli
from tests.studio_server import BUNDLED_PRIMER, REPO, call, wait_state


def studio(*args: str):
    return cli("studio", "--no-browser", *args)


def test_bad_options_are_one_line(tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        result = studio("--port", str(port), "--pieces", str(tmp_path / "p"))
    finally:
        taken.close()
    assert result.exit_code == 2 and "cannot listen" in result.stderr, result.output
    assert "--port" in result.stderr.splitlines()[-1]
    result = studio("--model", str(tmp_path / "nowhere"), "--pieces", str(tmp_path / "p"))
    assert result.exit_code == 2 and "neither a bundled model" in result.stderr
    (tmp_path / "file").write_text("x")
    result = studio("--pieces", str(tmp_path / "file"))
    assert result.exit_code == 2 and "is a file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("inherited", [signal.SIG_DFL, signal.SIG_IGN], ids=["terminal", "nohup"])
def test_ctrl_c_stops_a_running_job(tmp_path: Path, inherited) -> None:
    """Whether the studio was started from a terminal or, like `nohup … &`, with SIGINT
    ignored (which uvicorn overrides while serving), SIGINT stops it with exit status 130."""
    command = [sys.executable, "-m", "cli", "studio", "--port", "0", "--no-browser",
               "--pieces", str(tmp_path / "pieces")]  # fmt: skip
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        preexec_fn=lambda: signal.signal(signal.SIGINT, inherited),
    )  # fmt: skip
    try:
        url = proc.stdout.readline().split()[2].rstrip("/")
        _, piece = call("POST", f"{url}/api/pieces?name=p.mid", BUNDLED_PRIMER.read_bytes(),
                        "audio/midi")  # fmt: skip
        _, job = call("POST", f"{url}/api/pieces/{piece['id']}/jobs", {"seconds": 600})
        wait_state(url, job["id"], ("running",))
        time.sleep(1)
        asked = time.time()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130  # the shell's code for Ctrl-C, as every command
        assert time.time() - asked < 15, "Ctrl-C waited for the generation to finish"
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.stderr.read().strip() == "Interrupted."
