"""Finding sources: folders, files, music21 corpora (converted once, cached)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from midi_data import DataError, find_files, music21_files
from midi_data.cache import cache_dir
from midi_data.corpus import _convert_job, music21_scores


def test_folder_search_is_recursive_and_keeps_any_name(tmp_path):
    for rel in ["a.mid", "b.MIDI", "deep/er/ç ♪ #1.midi", "skip.txt", "skip.kar", "x.mid.bak"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"MThd")
    files = find_files([str(tmp_path)])
    assert [f.relative for f in files] == ["a.mid", "b.MIDI", "deep/er/ç ♪ #1.midi"]
    assert all(f.source == str(tmp_path) and f.path.is_file() for f in files)
    single = find_files([str(tmp_path / "skip.kar")])  # a file given by name is taken as is
    assert [(f.relative, f.path) for f in single] == [("skip.kar", tmp_path / "skip.kar")]


def test_missing_and_unknown_sources(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        find_files([str(tmp_path), str(tmp_path / "missing")])
    with pytest.raises(DataError, match="unknown corpus 'music21:mozart'"):
        find_files(["music21:mozart"])
    with pytest.raises(DataError, match="no SOURCE"):
        find_files([])


def test_bach_corpus_lists_each_chorale_once():
    pytest.importorskip("music21")
    scores = music21_scores("bach")
    names = [rel for rel, _ in scores]
    assert 400 <= len(names) <= 420 and len(set(names)) == len(names)
    assert not any(p.suffix == ".rntxt" for _, p in scores)  # analyses, not music
    assert all(rel.startswith("bach/") for rel in names)


def test_conversion_is_cached(bach_midi_dir):
    start = time.perf_counter()
    files = music21_files("bach", limit=12)  # the fixture converted these already
    assert time.perf_counter() - start < 3
    assert all(f.path.is_file() and cache_dir() in f.path.parents for f in files)
    assert all(f.source == "music21:bach" and f.error is None for f in files)
    assert Path(__file__).resolve().parents[1] not in files[0].path.parents  # not in the repo


def test_cache_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MUSIC_TRANSFORMER_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("MUSIC_TRANSFORMER_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "music-transformer"


def test_failed_conversion_is_remembered(tmp_path):
    pytest.importorskip("music21")
    out = tmp_path / "cache" / "bad.mid"
    _convert_job((str(tmp_path / "missing.mxl"), str(out)))
    assert not out.exists()
    assert "music21 could not convert it" in Path(str(out) + ".failed").read_text()
