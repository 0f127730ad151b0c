"""The sampler's guards (`generation.guards`, `generation.rewind`): window statistics on real
music, backtracks that restore a row exactly, and guards off = the sampler as it was."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from midi_data.presets import performance
from music_transformer.generation.guards import (
    GuardBands,
    GuardSettings,
    OnsetReader,
    window_stats,
)
from music_transformer.generation.loading import context_slides, load_model, sample_batch
from music_transformer.generation.primers import read_primer
from music_transformer.generation.settings import SamplingSettings
from tests.helpers import BUNDLED_PRIMERS, cli, one_line_error

PRIMERS = "music_transformer/bundled/primers/"
BUNDLED = BUNDLED_PRIMERS.parent
# No window of any music can pass these: every check fails, so backtracks happen where the
# test wants them.
NEVER = GuardBands(min_distinct=1000)


@pytest.fixture(scope="module")
def loaded():
    return load_model("piano-transformer", "cpu")


@pytest.fixture(scope="module")
def primers(loaded):
    tok = loaded.tokenizer
    a = read_primer(tok, PRIMERS + "piano-chpn-op53.mid", 4.0, file_time=True).ids
    b = read_primer(tok, PRIMERS + "piano-beethoven-opus10-3.mid", 3.0, file_time=True).ids
    return a, b


def _id(tok, kind: int, arg: int) -> int:
    return int(np.nonzero((np.asarray(tok.kind) == kind) & (np.asarray(tok.arg) == arg))[0][0])


def _triad_loop(tok, bars: int) -> list[int]:
    """One A-major triad struck every half second, `bars` times."""
    vel = int(np.nonzero(np.asarray(tok.kind) == performance.VELOCITY)[0][20])
    shift = _id(tok, performance.SHIFT, 25)  # 25 ticks = 0.25 s
    on = [_id(tok, performance.NOTE_ON, p) for p in (57, 61, 64)]
    off = [_id(tok, performance.NOTE_OFF, p) for p in (57, 61, 64)]
    return [tok.bos_id, vel] + [*on, shift, *off, shift] * bars


def test_real_music_stays_inside_the_default_bands(loaded, shared_data) -> None:
    """Ten-second windows of the ten MAESTRO performances (not in the data the bands came
    from) seldom trip the loop checks; a re-struck triad does. Each band is a 0.2nd or 99.8th
    percentile (silence: the 99th) of the training split, which trips 1.6% of its own
    windows. MAESTRO is live competition playing — denser than the training music, and with
    pauses between pieces — 5.7% of its windows trip a band, 0.9% a pitch one (measured)."""
    tok, reader = loaded.tokenizer, OnsetReader(loaded.tokenizer)
    stats = []
    for path in sorted((shared_data / "maestro-samples").glob("Maestro_*.mid")):
        tape = reader.read(tok.encode(path))
        stats += [window_stats(tape, t, t + 10.0) for t in np.arange(0.0, tape.clock - 10, 2.0)]
    bad = [b for b in (s.breach(GuardBands()) for s in stats) if b is not None]
    pitch = [b for b in bad if b.startswith(("distinct", "two-pitch", "repeated"))]
    assert len(stats) > 4000
    assert len(bad) < 0.08 * len(stats) and len(pitch) < 0.015 * len(stats)
    loop = reader.read(_triad_loop(tok, 40))
    why = window_stats(loop, loop.clock - 10.0, loop.clock).breach(GuardBands())
    assert why is not None and why.startswith("distinct pitches 3")


def _run(loaded, rows, **kw):
    # guard off unless a test asks for one (piano-transformer's card turns it on by default)
    base = dict(precision="fp32", max_note_seconds=4.0, primer_note_limit=False, guard=False)
    return sample_batch(loaded, [list(r) for r in rows], SamplingSettings(**{**base, **kw}))


def test_a_guard_that_never_fires_changes_nothing(loaded, primers) -> None:
    """A guard that watches every quarter second but whose bands nothing breaks leaves the
    tokens, and the random stream, exactly as an unguarded run makes them. (When the guards
    came, the unguarded tokens were also checked equal to those of the sampler before them,
    commit ea00ef1; a hash pinned here would break with every retrained model.)"""
    got = _run(loaded, primers, seed=5, tokens=40, top_k=20)
    wide = GuardBands(min_distinct=0, max_top2=1, max_repeat=1, max_silence=99, min_density=0)
    quiet = GuardSettings(window=0.5, check_every=0.25, bands=replace(wide, max_density=1e9))
    guarded = _run(loaded, primers, seed=5, tokens=40, top_k=20, guard=quiet)
    assert [g.tokens for g in guarded] == [g.tokens for g in got]
    assert [g.guard["backtracks"] for g in guarded] == [[], []]
    assert got[0].guard is None


@pytest.mark.parametrize("name", ["piano-transformer", "piano-lstm"])
def test_greedy_backtracks_restore_model_state_and_grammar_exactly(name, primers) -> None:
    """Greedy decoding after a backtrack must write again exactly what it wrote before: any
    stale key (or LSTM state) or grammar state left from the abandoned branch would change
    it — as would a row done at its budget being written to while another still runs."""
    model = load_model(name, "cpu")
    plain = _run(model, primers, temperature=0.0, tokens=90)
    every = GuardSettings(window=0.6, check_every=0.2, rewind=0.3, max_attempts=2, bands=NEVER)
    guarded = _run(model, primers, temperature=0.0, tokens=90, guard=every)
    assert [g.tokens for g in guarded] == [g.tokens for g in plain]
    for g in guarded:
        backs = g.guard["backtracks"]
        assert backs and all(b["to"] < b["at"] for b in backs)
        assert {b["attempt"] for b in backs} == {1, 2}


@pytest.mark.parametrize("window", [None, 48], ids=["whole", "sliding"])
def test_a_backtracked_row_continues_as_a_fresh_run_from_its_prefix(
    loaded, primers, window
) -> None:
    """Row 1 of a batch goes back once; from there on it is a fresh run from the primer plus
    the tokens it kept, with the seed the backtrack records — also past a sliding window."""
    once = GuardSettings(window=0.6, check_every=0.2, rewind=0.3, max_backtracks=1, bands=NEVER)
    kw = dict(temperature=1.0, tokens=80, window=window)
    guarded = _run(loaded, primers, seed=11, guard=once, **kw)[1]
    (back,) = guarded.guard["backtracks"]
    kept = back["to_token"]
    assert 0 < kept < 80
    prefix = list(primers[1]) + guarded.tokens[:kept]
    fresh = _run(loaded, [prefix], **{**kw, "seed": back["seed"], "tokens": 80 - kept})[0]
    assert guarded.tokens[kept:] == fresh.tokens


def test_guarded_rows_do_not_depend_on_their_batch(loaded, primers) -> None:
    guard = GuardSettings(window=0.6, check_every=0.2, rewind=0.3, max_backtracks=3, bands=NEVER)
    kw = dict(temperature=1.0, tokens=70, guard=guard)
    batched = _run(loaded, primers, seed=3, **kw)
    alone = [_run(loaded, [p], seed=3 + i, **kw)[0] for i, p in enumerate(primers)]
    assert [g.tokens for g in batched] == [g.tokens for g in alone]
    assert [g.guard["backtracks"] for g in batched] != [[], []]
    for b, a in zip(batched, alone):
        assert [x["at"] for x in b.guard["backtracks"]] == [x["at"] for x in a.guard["backtracks"]]


def test_the_guard_fires_on_a_loop_and_records_it(loaded) -> None:
    """A primer of one triad re-struck: greedy decoding goes on re-striking it, the window's
    pitches fail, the row backtracks (greedy finds the same loop again) and, its attempts
    spent, keeps the window; every backtrack is recorded."""
    loop = _triad_loop(loaded.tokenizer, 16)
    guard = GuardSettings(window=4.0, check_every=1.0, rewind=1.0, max_attempts=2)
    got = _run(loaded, [loop], temperature=0.0, seconds=6.0, guard=guard)[0]
    backs = got.guard["backtracks"]
    assert backs, "the loop was not caught"
    assert all(b["reason"].startswith(("distinct", "two-pitch", "repeated")) for b in backs)
    assert [b["attempt"] for b in backs][:2] == [1, 2]
    assert all(b["at"] >= 4.0 - 1e-6 and b["to"] < b["at"] for b in backs)


@pytest.mark.parametrize("name", ["bach-absolute", "jsb-relative"])
def test_models_the_guard_cannot_rewind_sample_unguarded_and_say_why(name: str) -> None:
    """An absolute-position model re-encodes its context, and `jsb` tokens are not a
    performance: the guard stays off and the result says so."""
    loaded = load_model(name, "cpu")
    got = sample_batch(
        loaded, [[loaded.tokenizer.bos_id]], SamplingSettings(tokens=8, guard=GuardSettings())
    )
    assert "performance tokens" in got[0].guard["note"]
    assert len(got[0].tokens) == 8


def test_continue_records_the_guard_in_its_sidecar(tmp_path) -> None:
    """--guard / --no-guard win; without either, the model card's choice (piano-transformer's
    card, and a copy of the model whose card says the opposite)."""
    card_says = json.loads((BUNDLED / "piano-transformer" / "config.json").read_text())
    card_says = card_says["card"]["sampling"].get("guard") is True
    other = tmp_path / "other-card"
    shutil.copytree(BUNDLED / "piano-transformer", other)
    meta = json.loads((other / "config.json").read_text())
    meta["card"]["sampling"]["guard"] = not card_says
    (other / "config.json").write_text(json.dumps(meta))

    primer = PRIMERS + "piano-chpn-op53.mid"
    common = ["--primer-seconds", "3", "--seconds", "2", "--seed", "1", "--precision", "fp32"]
    cases = [("--guard", "piano-transformer", True), ("--no-guard", "piano-transformer", False),
             ("--no-guard", str(other), False), (None, "piano-transformer", card_says),
             (None, str(other), not card_says)]  # fmt: skip
    for i, (flag, model, guarded) in enumerate(cases):
        out = tmp_path / f"take-{i}.mid"
        args = ["continue", primer, "-o", out, "--model", model, *common, "--min-p", "0.05", "-q"]
        result = cli(*args, *([flag] if flag else []))
        assert result.exit_code == 0, result.output
        record = json.loads(out.with_suffix(".json").read_text())
        assert record["sampling"]["min_p"] == 0.05
        if guarded:
            assert record["sampling"]["guard"]["window"] == GuardSettings().window, (flag, model)
            assert record["guard"]["backtracks"] == []
            assert record["guard"]["bands_used"]["min_distinct"] == GuardBands().min_distinct
        else:
            assert record["sampling"]["guard"] is False and "guard" not in record, (flag, model)
    bad = cli("continue", primer, "-o", tmp_path / "x.mid", "--min-p", "2")
    assert bad.exit_code == 2 and "min_p must be in (0, 1]" in bad.output


def test_settings_come_back_from_their_record() -> None:
    """A sidecar's or a studio take's settings rebuild the settings that wrote them (the
    studio re-writes a lost take from them), guard and bands included."""
    bands = replace(GuardBands(), min_distinct=3)
    for guard in (False, None, GuardSettings(), GuardSettings(window=6.0, bands=bands)):
        settings = SamplingSettings(seed=4, seconds=20.0, temperature=1.0, guard=guard)
        record = json.loads(json.dumps(settings.record()))
        assert SamplingSettings.from_record(record) == settings


def test_attention_sinks_default_to_the_model_cards_choice(tmp_path) -> None:
    """--sink-tokens K wins, 0 turns sinks off; without it, the card's `sink_tokens` (a copy
    of piano-transformer whose card asks for 32 sinks, and the bundled card)."""
    card = json.loads((BUNDLED / "piano-transformer" / "config.json").read_text())
    bundled = card["card"]["sampling"].get("sink_tokens") or 0
    other = tmp_path / "sinks-card"
    shutil.copytree(BUNDLED / "piano-transformer", other)
    meta = json.loads((other / "config.json").read_text())
    meta["card"]["sampling"]["sink_tokens"] = 32
    (other / "config.json").write_text(json.dumps(meta))
    assert load_model(other, "cpu").sink_tokens == 32

    primer = PRIMERS + "piano-chpn-op53.mid"
    common = ["--primer-seconds", "3", "--seconds", "2", "--seed", "1", "--precision", "fp32"]
    cases = [(None, str(other), 32), ("0", str(other), 0), ("16", str(other), 16),
             (None, "piano-transformer", bundled)]  # fmt: skip
    for i, (flag, model, sinks) in enumerate(cases):
        out = tmp_path / f"take-{i}.mid"
        args = ["continue", primer, "-o", out, "--model", model, *common, "--no-guard", "-q"]
        result = cli(*args, *(["--sink-tokens", flag] if flag else []))
        assert result.exit_code == 0, result.output
        record = json.loads(out.with_suffix(".json").read_text())
        assert record["sampling"]["sink_tokens"] == sinks, (flag, model)
    info = cli("info", str(other))
    assert "sinks:      32" in info.output
    one_line_error(cli("continue", primer, "-o", tmp_path / "x.mid", "--sink-tokens", "-1"),
                   "sink_tokens")  # fmt: skip
    for model in ("piano-lstm", "bach-absolute"):  # contexts that never slide
        refused = cli("continue", primer, "-o", tmp_path / "y.mid", "--model", model,
                      "--sink-tokens", "8")  # fmt: skip
        one_line_error(refused, "--sink-tokens 8", model)
        assert not (tmp_path / "y.mid").exists()
        assert not context_slides(load_model(model, "cpu"))  # recipes skip sinks for these
    assert context_slides(load_model("piano-transformer", "cpu"))
