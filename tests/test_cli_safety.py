"""Nothing a user owns is destroyed, and a bad output path is one line that says what is
wrong: `continue` and `generate` with the session's tiny model on real chorales."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from tests.helpers import cli, one_line_error


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def primer(bach_midi_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copy(sorted(bach_midi_dir.glob("*.mid"))[0], tmp_path / "primer.mid"))


QUICK = ("--tokens", "8", "-q", "--seed", "1")


# --- item 3: an output whose sidecar is the output itself -------------------------------------


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
def test_output_named_like_its_own_sidecar_is_refused(tiny_run, primer, tmp_path, force):
    out = tmp_path / "take.json"
    result = cli("continue", primer, "-o", out, "--model", tiny_run, *QUICK,
                 *(["--force"] if force else []))  # fmt: skip
    err = one_line_error(result)
    assert "overwritten by its own JSON sidecar" in err and "another process" not in err
    assert not out.exists()


# --- item 4: an output that is (or resolves to) an input --------------------------------------


@pytest.mark.parametrize("spelling", ["same", "dotted", "symlink"])
def test_continue_never_overwrites_its_primer(tiny_run, primer, tmp_path, spelling):
    before = digest(primer)
    out = {"same": primer, "dotted": tmp_path / "new" / ".." / "primer.mid"}.get(spelling)
    if spelling == "symlink":
        out = tmp_path / "link.mid"
        out.symlink_to(primer)
    err = one_line_error(cli("continue", primer, "-o", out, "--model", tiny_run, *QUICK, "--force"))
    assert "is an input (a primer)" in err
    assert digest(primer) == before and not (tmp_path / "new").exists()
    assert not primer.with_suffix(".json").exists()


def test_generate_never_overwrites_a_primer(tiny_run, bach_midi_dir, tmp_path):
    """Primers a.mid and a-1.mid in the output folder: a.mid's first piece would be a-1.mid."""
    folder = tmp_path / "D"
    folder.mkdir()
    chorales = sorted(bach_midi_dir.glob("*.mid"))
    shutil.copy(chorales[0], folder / "a.mid")
    shutil.copy(chorales[1], folder / "a-1.mid")
    before = {p.name: digest(p) for p in folder.iterdir()}
    args = ("generate", "--out", folder, "--primers", folder, "--model", tiny_run, *QUICK)
    err = one_line_error(cli(*args, "--force"))
    assert "a-1.mid is an input (a primer)" in err
    assert {p.name: digest(p) for p in folder.iterdir()} == before


# --- messages that say what is wrong ----------------------------------------------------------


def test_empty_output_names_are_refused(tiny_run, primer, tmp_path):
    err = one_line_error(cli("continue", primer, "-o", "", "--model", tiny_run, *QUICK))
    assert "the output file name is empty" in err and "PosixPath" not in err
    err = one_line_error(cli("generate", "-o", "", "--model", tiny_run, *QUICK))
    assert "the output folder name is empty" in err


def test_an_output_that_is_a_folder_says_so_and_not_force(tiny_run, primer, tmp_path):
    folder = tmp_path / "existing"
    folder.mkdir()
    for args in ((), ("--force",)):
        err = one_line_error(
            cli("continue", primer, "-o", folder, "--model", tiny_run, *QUICK, *args)
        )
        assert "is a folder; give a file name such as" in err and "--force" not in err
    new = f"{tmp_path / 'newdir'}/"
    err = one_line_error(cli("continue", primer, "-o", new, "--model", tiny_run, *QUICK))
    assert "is a folder" in err
    assert not (tmp_path / "newdir").exists()


def test_unwritable_output_names_the_output_not_a_temporary_file(tiny_run, primer, tmp_path):
    err = one_line_error(cli("continue", primer, "-o", "/proc/x.mid", "--model", tiny_run, *QUICK))
    assert "/proc/x.mid" in err and ".tmp" not in err
