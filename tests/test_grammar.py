"""Grammar-aware sampling: note limits, musical endings, honest lengths, four-part voice
order, the repeat guard — on tiny models with the real tokenizers, pushed towards the faults."""
# Sampling tests of random models run in fp32: with precision "auto" a machine where bf16
# measured faster (or a busy one) would sample other tokens, and what they assert would
# depend on the machine.

from __future__ import annotations

from collections import deque
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from midi_data.presets import make_tokenizer
from midi_data.presets import performance as perf
from midi_data.presets import score as remi
from music_transformer.generation.rules import TokenInfo
from music_transformer.generation.sampler import generate
from music_transformer.generation.settings import SamplingSettings
from music_transformer.nn import build_model, make_config


class Biased(nn.Module):
    """A model whose logits get a fixed bias: pushes sampling towards one fault."""

    def __init__(self, model: nn.Module, bias: torch.Tensor):
        super().__init__()
        self.model, self.config = model, model.config
        self.register_buffer("bias", bias)

    def forward(self, tokens, cache=None, valid=None, window=None):
        logits, cache = self.model(tokens, cache=cache, valid=valid, window=window)
        return logits + self.bias, cache


def tiny(vocab: int, arch: str = "transformer", bias: torch.Tensor | None = None) -> nn.Module:
    torch.manual_seed(0)
    model = build_model(make_config(arch, "tiny", vocab)).eval()
    return Biased(model, torch.zeros(vocab) if bias is None else bias).eval()


def performance_notes(tok, ids: list[int]) -> tuple[list[tuple[float, float, int]], int]:
    """(start s, end s, pitch) of every note closed by a NOTE_OFF, and how many are left
    sounding at the end — the grammar as a reference, written out independently."""
    t, open_, notes = 0, {}, []
    for i in ids:
        k, a = int(tok.kind[i]), int(tok.arg[i])
        if k == perf.SHIFT:
            t += a
        elif k == perf.NOTE_ON:
            open_.setdefault(a, deque()).append(t)
        elif k == perf.NOTE_OFF and open_.get(a):
            notes.append((open_[a].popleft() * 0.01, t * 0.01, a))
    return notes, sum(len(q) for q in open_.values())


@pytest.fixture(scope="module")
def ptok():
    return make_tokenizer("performance")


def primer_ids(tok) -> list[int]:
    """BOS, a C major chord held, released, one more note left sounding."""
    on = {int(tok.arg[i]): i for i in np.nonzero(tok.kind == perf.NOTE_ON)[0]}
    off = {int(tok.arg[i]): i for i in np.nonzero(tok.kind == perf.NOTE_OFF)[0]}
    shift = {int(tok.arg[i]): i for i in np.nonzero(tok.kind == perf.SHIFT)[0]}
    return [tok.bos_id, on[60], on[64], on[67], shift[50], off[60], off[64], off[67], on[72],
            shift[20]]  # fmt: skip


def no_note_off_bias(tok) -> torch.Tensor:
    bias = torch.zeros(tok.vocab_size)
    bias[torch.as_tensor(tok.kind == perf.NOTE_OFF)] = -30.0  # never lets a note go
    bias[torch.as_tensor(tok.kind == perf.SHIFT)] = 3.0  # and keeps time moving
    return bias


def test_a_model_that_never_lets_go_still_plays_no_note_past_the_limit(ptok) -> None:
    model, p = tiny(ptok.vocab_size, bias=no_note_off_bias(ptok)), primer_ids(ptok)
    info = TokenInfo.of(ptok)
    free = SamplingSettings(seconds=20.0, seed=1, precision="fp32", grammar=False)
    stuck = generate(model, [p], free, info)[0]
    notes, open_at_end = performance_notes(ptok, p[1:] + stuck.tokens)
    assert open_at_end > 0 or max(e - s for s, e, _ in notes) > 5.0  # the fault is real
    limited = SamplingSettings(seconds=20.0, seed=1, precision="fp32", max_note_seconds=2.0)
    for primer, row in zip([p, p[:4]], generate(model, [p, p[:4]], limited, info)):
        notes, open_at_end = performance_notes(ptok, primer[1:] + row.tokens)
        assert open_at_end == 0  # every note closed before the end
        assert max(e - s for s, e, _ in notes) <= 2.0 + 1e-9
        decoded = ptok.decode_notes(primer[1:] + row.tokens)  # the real decoder agrees
        assert ((decoded.end - decoded.start) * perf.TICK_SECONDS).max() <= 2.0 + 1e-9
        assert 18.0 <= row.seconds <= 22.0 and row.stopped_by == "seconds"


def test_each_row_holds_no_note_longer_than_twice_its_primers_longest(ptok) -> None:
    """The primer's own note lengths bound its continuation's: a 0.5-s chord → 2 s (the
    floor), a 3-s note → 6 s, no notes → the model's limit; a model that never lets go shows
    each row reaching its own bound, not a shared one."""
    model, info = tiny(ptok.vocab_size, bias=no_note_off_bias(ptok)), TokenInfo.of(ptok)
    short = primer_ids(ptok)
    on, off = short[1], short[5]  # NOTE_ON / NOTE_OFF of C4
    held = [ptok.bos_id, on, *[short[4]] * 6, off]  # C4 held 6 × 0.5 s
    settings = SamplingSettings(seconds=20.0, seed=1, precision="fp32", max_note_seconds=9.0,
                                primer_note_limit=True)  # fmt: skip
    primers = [short, held, [ptok.bos_id]]
    rows = generate(model, primers, settings, info)
    longest = []
    for row in rows:
        notes, open_at_end = performance_notes(ptok, row.tokens)
        assert open_at_end == 0 and notes
        longest.append(max(e - s for s, e, _ in notes))
    assert longest[0] <= 2.0 + 1e-9 and longest[1] <= 6.0 + 1e-9 and longest[2] <= 9.0 + 1e-9
    assert longest[1] > 2.0 + 1e-9 and longest[2] > 6.0 + 1e-9  # each row its own bound
    off_by_default = SamplingSettings(seconds=5.0, max_note_seconds=9.0)
    assert SamplingSettings(seconds=5.0).primer_note_limit and not off_by_default.primer_note_limit


@pytest.mark.parametrize("arch", ["transformer", "transformer-absolute", "lstm"])
def test_endings_fall_between_nine_and_eleven_tenths_with_nothing_sounding(ptok, arch) -> None:
    model, p = tiny(ptok.vocab_size, arch), primer_ids(ptok)
    settings = SamplingSettings(seconds=8.0, seed=3, precision="fp32", window=64)
    for row in generate(model, [p] * 4, settings, TokenInfo.of(ptok)):
        _, open_at_end = performance_notes(ptok, p[1:] + row.tokens)
        assert 7.2 - 1e-9 <= row.seconds <= 8.8 + 1e-9, row.seconds
        assert open_at_end == 0 and row.stopped_by in ("seconds", "eos")


def test_a_model_that_wants_to_stop_still_gives_the_length_asked(ptok) -> None:
    bias = torch.zeros(ptok.vocab_size)
    bias[ptok.eos_id] = 30.0
    model, p, info = tiny(ptok.vocab_size, bias=bias), primer_ids(ptok), TokenInfo.of(ptok)
    honest = generate(model, [p], SamplingSettings(seconds=6.0, seed=0, precision="fp32"), info)[0]
    assert honest.seconds >= 0.9 * 6.0 and honest.stopped_by in ("seconds", "eos")
    early = SamplingSettings(seconds=6.0, seed=0, allow_early_end=True, precision="fp32")
    quitter = generate(model, [p[:8]], early, info)[0]  # nothing sounds: it may end at once
    assert quitter.stopped_by == "eos" and quitter.seconds < 1.0
    exact = generate(model, [p], SamplingSettings(tokens=50, seed=0, precision="fp32"), info)[0]
    assert (len(exact.tokens), exact.stopped_by) == (50, "tokens")  # no EOS before N tokens


def test_four_part_grids_keep_their_voice_order_unless_allowed_to_cross() -> None:
    tok = make_tokenizer("jsb")
    model = tiny(tok.vocab_size, bias=torch.zeros(tok.vocab_size))
    p = [tok.bos_id, *tok.encode_grid(np.array([[72, 67, 64, 48]] * 4))]

    def crossings(settings: SamplingSettings) -> int:
        rows = generate(model, [p] * 4, settings, TokenInfo.of(tok))
        count = 0
        for row in rows:
            assert len(row.tokens) % 4 == 0  # whole steps only
            for step in tok.decode_grid(p[1:] + row.tokens):
                sounding = [v for v in step if v >= 0]
                count += sounding != sorted(sounding, reverse=True)
        return count

    base = dict(seconds=8.0, seed=2, temperature=1.5, max_note_seconds=1.0, precision="fp32")
    assert crossings(SamplingSettings(**base)) == 0
    assert crossings(SamplingSettings(**base, allow_voice_crossing=True)) > 0


def test_four_part_grids_hold_no_pitch_past_the_limit() -> None:
    tok = make_tokenizer("jsb")
    bias = torch.zeros(tok.vocab_size)
    bias[tok.encode_grid(np.array([[60, 60, 60, 60]]))[0]] = 20.0  # C4 in every voice, always
    model, p = tiny(tok.vocab_size, bias=bias), [tok.bos_id]
    settings = SamplingSettings(
        seconds=6.0, seed=0, max_note_seconds=0.5, precision="fp32"
    )  # 4 steps
    row = generate(model, [p], settings, TokenInfo.of(tok))[0]
    grid = tok.decode_grid(row.tokens)
    for voice in range(4):
        run = longest = 0
        for prev, cur in zip([None, *grid[:-1, voice]], grid[:, voice]):
            run = run + 1 if cur == prev and cur >= 0 else 1
            longest = max(longest, run)
        assert longest <= 4, (voice, grid[:, voice])


def test_score_tokens_come_as_whole_notes_no_longer_than_the_limit() -> None:
    tok = make_tokenizer("score")
    bias = torch.zeros(tok.vocab_size)
    bias[torch.as_tensor(tok.kind == remi.BAR)] = 3.0  # a random model rarely moves on
    model, p = tiny(tok.vocab_size, bias=bias), [tok.bos_id]
    settings = SamplingSettings(
        seconds=20.0, seed=4, temperature=1.5, max_note_seconds=1.0, precision="fp32"
    )
    row = generate(model, [p], settings, TokenInfo.of(tok))[0]
    kinds = [int(tok.kind[i]) for i in row.tokens]
    for i, k in enumerate(kinds):
        if k == remi.PITCH:
            assert kinds[i + 1 : i + 3] == [remi.VELOCITY, remi.DURATION]
        if k in (remi.VELOCITY, remi.DURATION):
            assert kinds[i - 1] == (remi.PITCH if k == remi.VELOCITY else remi.VELOCITY)
    rows = tok.decode_notes(row.tokens)  # (N, 4): start, end ticks (8 per beat at 120 BPM)
    assert len(rows) and ((rows[:, 1] - rows[:, 0]) * 0.5 / 8).max() <= 1.0
    assert 18.0 <= row.seconds <= 22.0


def test_the_repeat_guard_breaks_greedy_loops(ptok) -> None:
    model, p, info = tiny(ptok.vocab_size), primer_ids(ptok), TokenInfo.of(ptok)
    greedy = SamplingSettings(
        tokens=300, temperature=0.0, primer_note_limit=False, precision="fp32"
    )

    def repeated(ids: list[int], n: int) -> int:
        grams = [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]
        return len(grams) - len(set(grams))

    looped = generate(model, [p], greedy, info)[0].tokens
    assert repeated(p + looped, 8) > 0  # a random model's greedy decoding loops
    guarded = replace(greedy, no_repeat_ngram=8)
    assert repeated(p + generate(model, [p], guarded, info)[0].tokens, 8) == 0


@pytest.mark.parametrize("arch", ["transformer", "transformer-absolute", "lstm"])
def test_rows_do_not_depend_on_the_batch(ptok, arch) -> None:
    """A row's continuation is a function of its primer, seed and settings only."""
    model, info = tiny(ptok.vocab_size, arch), TokenInfo.of(ptok)
    base = primer_ids(ptok)
    primers = [base[: 3 + (i % 7)] for i in range(16)]  # different lengths: left padding
    settings = SamplingSettings(tokens=90, seed=11, precision="fp32", window=48)
    together = generate(model, primers, settings, info)
    for i in (0, 5, 15):
        alone = generate(model, [primers[i]], SamplingSettings(
            tokens=90, seed=11 + i, precision="fp32", window=48), info)[0]  # fmt: skip
        assert alone.tokens == together[i].tokens, i


def test_a_restruck_pitch_is_closed_first_and_no_note_closes_at_its_onset(ptok) -> None:
    from music_transformer.generation.grammar import grammar_for

    on = {int(ptok.arg[i]): i for i in np.nonzero(ptok.kind == perf.NOTE_ON)[0]}
    off = {int(ptok.arg[i]): i for i in np.nonzero(ptok.kind == perf.NOTE_OFF)[0]}
    g = grammar_for(ptok, [[ptok.bos_id, on[60]]], torch.device("cpu"))
    assert not g.allowed(None)[0, off[60]]  # 60 began this instant: its NOTE_OFF is skipped
    shift = int(np.nonzero(ptok.kind == perf.SHIFT)[0][0])
    g.update(torch.tensor([shift]))
    assert g.allowed(None)[0, off[60]]
    assert int(g.rewrite(torch.tensor([on[60]]), None)[0]) == off[60]  # re-strike: close it
    assert int(g.rewrite(torch.tensor([on[62]]), None)[0]) == on[62]  # others pass
