"""allocator: glibc keeps freed buffers for reuse; elsewhere nothing changes. The program's
entry point sets the process up once; importing the CLI does not."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from music_transformer.allocator import keep_freed_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_thresholds_are_set_on_glibc() -> None:
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True  # idempotent


def test_a_fresh_process_still_computes_after_it() -> None:
    # A process that raised the thresholds allocates, frees and reallocates big tensors and
    # gets the same numbers as without (the allocator changes where memory comes from, not
    # what is in it).
    code = (
        "import sys, torch\n"
        "from music_transformer.allocator import keep_freed_memory\n"
        "if sys.argv[1] == '1': keep_freed_memory()\n"
        "torch.manual_seed(0)\n"
        "s = 0.0\n"
        "for _ in range(5):\n"
        "    a = torch.randn(2048, 2048)\n"
        "    s += float((a @ a).abs().sum())\n"
        "    del a\n"
        "print(repr(s))\n"
    )
    out = [
        subprocess.run([sys.executable, "-c", code, flag], capture_output=True, text=True,
                       check=True).stdout.strip()
        for flag in ("0", "1")
    ]  # fmt: skip
    assert out[0] == out[1] and float(out[0]) > 0


def test_importing_the_cli_changes_nothing_and_the_entry_point_sets_up_once() -> None:
    code = (
        "import os, sys\n"
        "import cli.main\n"
        "print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)\n"
        "cli.main.setup_process()\n"
        "from music_transformer import allocator\n"
        "print(os.environ.get('OMP_WAIT_POLICY'), allocator._done is not None)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env).stdout.split("\n")  # fmt: skip
    assert out[:2] == ["None False", "PASSIVE True"]
    mine = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env={**env, "OMP_WAIT_POLICY": "ACTIVE"}).stdout  # fmt: skip
    assert mine.split("\n")[1] == "ACTIVE True"  # a user's own setting wins
