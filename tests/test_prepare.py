"""`prepare`: a folder mixing good and broken files, reruns, overwriting, the CLI."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from midi_data import DataError, open_data, prepare
from tests.helpers import BUNDLED_PRIMERS, cli

BROKEN = {  # file in odd-midi → text expected in its skip reason
    "Issue104_Bizarre_Love_Triangle2.mid": "unreadable MIDI",
    "muspy_zero-ticks-per-beat.mid": "time division is 0",
    "muspy_negative-ticks-per-beat.mid": "SMPTE",
    "muspy_empty.mid": "no notes",
}


@pytest.fixture
def mixed_dir(tmp_path, bach_midi_dir, shared_data) -> Path:
    """5 chorales (one in a subfolder, one renamed .MIDI), 2 readable odd files, 4 broken
    ones, a text file named .mid, and a non-MIDI file that must be ignored."""
    folder = tmp_path / "mixed"
    (folder / "sub dir").mkdir(parents=True)
    chorales = sorted(bach_midi_dir.glob("*.mid"))[:5]
    for p in chorales[:3]:
        shutil.copy(p, folder / p.name)
    shutil.copy(chorales[3], folder / "sub dir" / chorales[3].name)
    shutil.copy(chorales[4], folder / "Choral É.MIDI")
    for name in [*BROKEN, "ValueError_Control168.mid", "测试文件.midi"]:
        shutil.copy(shared_data / "odd-midi" / name, folder / name)
    (folder / "notes.mid").write_text("this is not MIDI")
    (folder / "readme.txt").write_text("ignored")
    return folder


def test_good_files_prepared_bad_ones_listed(mixed_dir, tmp_path):
    out = tmp_path / "data"
    result = prepare([str(mixed_dir)], out, workers=2, split="0.6,0.2,0.2", progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    files = {e["path"]: e for e in manifest["files"]}
    assert "readme.txt" not in files and len(files) == 12
    skipped = {name: reason for name, reason in result.skipped}
    assert len(skipped) == len(BROKEN) + 1
    for name, text in BROKEN.items():
        assert text in files[name]["skipped"] and files[name]["split"] is None
    assert "no MThd header" in files["notes.mid"]["skipped"]
    good = [e for e in manifest["files"] if "skipped" not in e]
    assert len(good) == 7 and {e["split"] for e in good} == {"train", "valid", "test"}
    assert "sub dir/" + sorted(p.name for p in (mixed_dir / "sub dir").iterdir())[0] in files
    assert files["Choral É.MIDI"]["tokens"] > 0 and files["测试文件.midi"]["tokens"] > 0
    data = open_data(out)
    for split in ("train", "valid", "test"):
        entries = [e for e in good if e["split"] == split]
        assert data.num_pieces(split) == result.pieces[split] == len(entries)
        assert data.num_tokens(split) == sum(e["tokens"] + 2 for e in entries)  # + BOS, EOS
    assert all(len(e["sha256"]) == 64 for e in good)
    umask = os.umask(0)
    os.umask(umask)
    for name in ("manifest.json", "tokenizer.json", "train.tokens.npy"):  # not private files
        assert (out / name).stat().st_mode & 0o777 == 0o666 & ~umask


def test_rerun_is_identical_and_split_follows_relative_paths(mixed_dir, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    prepare([str(mixed_dir)], a, workers=1, progress=False)
    moved = shutil.copytree(mixed_dir, tmp_path / "elsewhere")  # same files, another root
    prepare([str(moved)], b, workers=2, progress=False)
    for name in ("train.tokens.npy", "valid.offsets.npy", "tokenizer.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    splits = [
        [(e["path"], e["split"]) for e in json.loads((d / "manifest.json").read_text())["files"]]
        for d in (a, b)
    ]
    assert splits[0] == splits[1]


def test_overwrite_only_a_data_dir(mixed_dir, tmp_path):
    out = tmp_path / "data"
    prepare([str(mixed_dir / "muspy_empty.mid"), str(mixed_dir / "测试文件.midi")], out,
            workers=1, progress=False)  # fmt: skip
    first = open_data(out).num_tokens("train")
    with pytest.raises(DataError, match="pass --force to replace it"):
        prepare([str(mixed_dir)], out, split="1,0,0", workers=1, progress=False)
    assert open_data(out).num_tokens("train") == first
    prepare([str(mixed_dir)], out, split="1,0,0", workers=1, progress=False, force=True)
    assert open_data(out).num_tokens("train") > first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "mixed"]  # no temp dirs
    with pytest.raises(DataError, match="not a data directory"):
        prepare([str(mixed_dir)], mixed_dir, workers=1, progress=False)
    with pytest.raises(DataError, match="does not exist"):
        prepare([str(tmp_path / "missing")], tmp_path / "x", workers=1, progress=False)
    with pytest.raises(DataError, match="--split"):
        prepare([str(mixed_dir)], tmp_path / "x", split="0.5,0.1", workers=1, progress=False)


def test_duplicates_are_skipped(bach_midi_dir, tmp_path):
    folder = tmp_path / "dups"
    folder.mkdir()
    one = next(bach_midi_dir.glob("*.mid"))
    shutil.copy(one, folder / "a.mid")
    shutil.copy(one, folder / "b.mid")
    result = prepare([str(folder)], tmp_path / "data", split="1,0,0", workers=1, progress=False)
    assert result.pieces["train"] == 1
    assert result.skipped == [(f"{folder}:b.mid", f"duplicate of {folder}:a.mid (same content)")]


def test_score_preset(bach_midi_dir, tmp_path):
    prepare(
        [str(bach_midi_dir)],
        tmp_path / "d",
        preset="score",
        split="0.5,0.5,0",
        workers=1,
        progress=False,
    )
    data = open_data(tmp_path / "d")
    assert data.tokenizer.preset == "score" and data.num_tokens("valid") > 0


def test_cli(mixed_dir, tmp_path):
    out = tmp_path / "cli data"
    ok = cli(*["prepare", str(mixed_dir), "--out", str(out), "--quiet", "-j", "1"])
    assert ok.exit_code == 0, ok.output
    assert "5 skipped" in ok.stdout and "train" in ok.stdout
    assert "skipped" in ok.stderr and "muspy_empty.mid" in ok.stderr
    missing = cli(*["prepare", str(tmp_path / "nope"), "--out", str(tmp_path / "n")])
    assert missing.exit_code == 2
    assert missing.stderr.strip().splitlines() == [
        f"Error: source {tmp_path / 'nope'} does not exist"
    ]
    refused = cli(*["prepare", str(mixed_dir), "--out", str(mixed_dir), "-q"])
    assert refused.exit_code == 2 and "refusing to overwrite" in refused.stderr
    bad_split = cli(*["prepare", str(mixed_dir), "-o", str(out), "--split", "1,1"])
    assert bad_split.exit_code == 2 and bad_split.stderr.startswith("Error: --split")


def test_each_source_split_on_its_own(tmp_path, bach_midi_dir):
    """Adding a second collection (another genre) leaves the first one's split exactly as it
    was, and the manifest counts pieces and tokens per source and split."""
    chorales = sorted(bach_midi_dir.glob("*.mid"))
    piano = tmp_path / "piano"
    piano.mkdir()
    for p in sorted(BUNDLED_PRIMERS.glob("piano-*.mid")):  # three real piano pieces
        shutil.copy(p, piano / p.name)
    split = "0.6,0.2,0.2"
    alone = prepare([str(bach_midi_dir)], tmp_path / "alone", workers=1, split=split,
                    progress=False)  # fmt: skip
    both = prepare([str(bach_midi_dir), str(piano)], tmp_path / "both", workers=1, split=split,
                   progress=False)  # fmt: skip
    assert alone.pieces["train"] < both.pieces["train"]

    def splits(out: Path, source: str) -> dict[str, str]:
        manifest = json.loads((out / "manifest.json").read_text())
        return {e["path"]: e["split"] for e in manifest["files"] if e["source"] == source}

    bach = splits(tmp_path / "alone", str(bach_midi_dir))
    assert len(bach) == len(chorales) and bach == splits(tmp_path / "both", str(bach_midi_dir))
    pianos = splits(tmp_path / "both", str(piano))
    assert sorted(pianos.values()) == ["test", "train", "valid"]  # 0.6/0.2/0.2 of 3: one each
    counts = json.loads((tmp_path / "both" / "manifest.json").read_text())["by_source"]
    assert counts[str(piano)]["train"]["pieces"] == 1
    total = sum(c["tokens"] + c["pieces"] * 2 for s in counts.values() for c in s.values())
    assert total == sum(both.tokens.values())  # each piece framed by BOS and EOS


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
def test_a_folder_with_some_manifest_json_is_never_replaced(bach_midi_dir, tmp_path, force):
    """A user's folder of MIDI files with their own manifest.json (or `generate`'s output
    folder, which has one too) is not a data directory: refused, --force or not, untouched."""
    mine = tmp_path / "mine"
    shutil.copytree(bach_midi_dir, mine)
    (mine / "manifest.json").write_text(json.dumps({"outputs": [], "my notes": "keep"}))
    before = _tree(mine)
    args = ["prepare", str(bach_midi_dir), "--out", str(mine), "-q", "-j", "1"]
    result = cli(*args, *(["--force"] if force else []))
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "not a data directory written by prepare" in result.stderr
    assert _tree(mine) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no temporary folder left


@pytest.mark.parametrize("case", ["empty folder", "only broken files", "its own output"])
def test_no_usable_piece_leaves_the_old_data_untouched(case, bach_midi_dir, mixed_dir, tmp_path):
    out = tmp_path / "data"
    prepare([str(bach_midi_dir)], out, workers=1, progress=False)
    before = _tree(out)
    source = {"empty folder": tmp_path / "empty", "its own output": out,
              "only broken files": tmp_path / "broken"}[case]  # fmt: skip
    source.mkdir(exist_ok=True)
    if case == "only broken files":
        for name in BROKEN:
            shutil.copy(mixed_dir / name, source / name)
    args = ["prepare", str(source), "--out", str(out), "-q", "-j", "1", "--force"]
    result = cli(*args)
    assert result.exit_code == 2, result.output
    error = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(error) == 1 and f"{out} was not written" in error[0]
    assert ("no MIDI files found" if case != "only broken files" else "none of the 4") in error[0]
    assert _tree(out) == before
