"""The KV-cached sampler on real (tiny, randomly initialized) models of every kind."""

from __future__ import annotations

import pytest
import torch

from music_transformer import calibration
from music_transformer.generation import sampler
from music_transformer.generation.filters import SamplingError
from music_transformer.generation.reference import generate_without_cache
from music_transformer.generation.sampler import TokenInfo, default_window, generate
from music_transformer.generation.settings import SamplingSettings
from tests.helpers import sharpened_model

VOCAB = 48
ARCHS = ["transformer", "transformer-absolute", "lstm"]


def tiny_model(arch: str = "transformer", seed: int = 0, **overrides) -> torch.nn.Module:
    """A sharpened tiny random model (see tests.helpers.sharpened_model), untied embeddings."""
    if arch != "lstm":
        overrides.setdefault("tie_embeddings", False)
    return sharpened_model(arch, VOCAB, seed, **overrides)


# Tests that need visibly different samples flatten the distribution with this temperature.
HOT = 2.0


def primer(length: int, seed: int = 1) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, VOCAB, (length,), generator=g).tolist()


def gen(
    model,
    primers,
    max_new_tokens,
    *,
    eos_id=None,
    suppress_ids=(),
    token_seconds=None,
    max_seconds=None,
    progress=None,
    precision="fp32",
    **settings,
) -> list[list[int]]:
    """The new tokens of each row, with the sampler's keyword names of the first release
    (where the model's EOS always ended a row)."""
    settings.setdefault("allow_early_end", True)
    s = SamplingSettings(
        tokens=max_new_tokens, seconds=max_seconds, precision=precision, **settings
    )
    info = TokenInfo(eos_id=eos_id, suppress_ids=tuple(suppress_ids), token_seconds=token_seconds)
    return [g.tokens for g in generate(model, primers, s, info, progress=progress)]


def nocache(model, primer, max_new_tokens, **settings) -> list[int]:
    settings.setdefault("temperature", 0.0)
    s = SamplingSettings(tokens=max_new_tokens, precision="fp32", **settings)
    return generate_without_cache(model, primer, s)


@pytest.mark.parametrize("arch", ARCHS)
def test_greedy_with_cache_equals_recomputing_the_prefix(arch: str) -> None:
    model = tiny_model(arch)
    p = primer(20)
    cached = gen(model, [p], max_new_tokens=60, temperature=0, window=256)[0]
    assert cached == nocache(model, p, 60)
    assert len(set(cached)) > 2  # a path that depends on the context, not one repeated token


@pytest.mark.parametrize("arch", ARCHS)
def test_sampling_with_cache_equals_recomputing_the_prefix(arch: str) -> None:
    # Same seed, same random stream: any difference in the logits would show up as soon as a
    # draw lands differently, and at this temperature the draws spread over the vocabulary.
    model = tiny_model(arch)
    p = primer(15)
    kwargs = {"temperature": HOT, "top_k": 30, "top_p": 0.98, "seed": 4}
    cached = gen(model, [p], max_new_tokens=80, window=256, **kwargs)[0]
    assert cached == nocache(model, p, 80, **kwargs)
    assert len(set(cached)) > 10


@pytest.mark.parametrize("temperature", [0.0, HOT])
@pytest.mark.parametrize("primer_len", [10, 40])
def test_sliding_window_equals_a_fresh_forward_over_the_window_one_layer(
    temperature: float, primer_len: int
) -> None:
    # With one layer, cached keys depend only on their own token, so the slid cache must give
    # exactly what a forward over the last `window` tokens gives, far past the window (and a
    # primer longer than the window is cut to its last `window` tokens).
    model = tiny_model(n_layers=1)
    p, window = primer(primer_len), 16
    kw = {"temperature": temperature, "seed": 1}
    cached = gen(model, [p], max_new_tokens=100, window=window, **kw)[0]
    assert cached == nocache(model, p, 100, window=window, **kw)


def test_absolute_model_re_encodes_the_last_half_window_when_full() -> None:
    # The absolute baseline cannot slide its cache; the sampler re-encodes the last window//2
    # tokens from position 0 whenever the window is full. Replay that rule without a cache.
    model = tiny_model("transformer-absolute")
    p, window = primer(12), 16
    cached = gen(model, [p], max_new_tokens=70, temperature=0, window=window)[0]
    history, context = list(p), list(p[-window:])
    with torch.no_grad():
        for _ in range(70):
            logits, _ = model(torch.tensor([context]))  # (1, T, V)
            token = int(logits[0, -1].argmax())
            history.append(token)
            context = history[-(window // 2) :] if len(context) >= window else [*context, token]
    assert cached == history[len(p) :]


@pytest.mark.parametrize("arch", ARCHS)
def test_rows_of_different_lengths_match_each_row_alone(arch: str) -> None:
    model = tiny_model(arch)
    primers = [primer(5, seed=2), primer(23, seed=3), primer(1, seed=4)]
    batched = gen(model, primers, max_new_tokens=30, temperature=0, window=64)
    for row, p in zip(batched, primers):
        assert row == gen(model, [p], max_new_tokens=30, temperature=0, window=64)[0]


@pytest.mark.parametrize("arch", ARCHS)
def test_generation_runs_ten_windows_past_the_context(arch: str) -> None:
    model = tiny_model(arch)
    out = gen(model, [primer(8), primer(3)], max_new_tokens=320, seed=0, window=32)
    assert [len(r) for r in out] == [320, 320]
    assert all(0 <= t < VOCAB for r in out for t in r)


def test_a_seed_makes_sampling_reproducible_row_by_row() -> None:
    model = tiny_model()
    p = primer(12)
    a = gen(model, [p, p, p], max_new_tokens=40, seed=7, temperature=HOT)
    assert a == gen(model, [p, p, p], max_new_tokens=40, seed=7, temperature=HOT)
    assert a[0] != a[1] != a[2]  # each row has its own stream: seed + i
    assert gen(model, [p], max_new_tokens=40, seed=8, temperature=HOT)[0] == a[1]
    assert gen(model, [p], max_new_tokens=40, seed=99, temperature=HOT)[0] != a[0]


def test_filters_that_keep_one_token_sample_greedily() -> None:
    model = tiny_model()
    p = primer(9)
    greedy = gen(model, [p], max_new_tokens=25, temperature=0)[0]
    assert gen(model, [p], max_new_tokens=25, top_k=1, seed=3)[0] == greedy
    assert gen(model, [p], max_new_tokens=25, top_p=1e-9, seed=3)[0] == greedy
    assert gen(model, [p], max_new_tokens=25, temperature=1e-4, seed=3)[0] == greedy


def test_top_k_restricts_samples_to_the_k_most_likely_tokens() -> None:
    model = tiny_model()
    p = primer(6)
    tokens = torch.tensor([p])
    with torch.no_grad():
        logits, _ = model(tokens)
    allowed = set(torch.topk(logits[0, -1], 3).indices.tolist())
    firsts = {
        gen(model, [p], max_new_tokens=1, top_k=3, seed=s, temperature=HOT)[0][0] for s in range(40)
    }
    assert firsts <= allowed
    assert len(firsts) > 1  # it really samples


def test_stops_at_eos_and_excludes_it() -> None:
    model = tiny_model()
    p = primer(7)
    free = gen(model, [p], max_new_tokens=60, temperature=HOT, seed=2)[0]
    # Pick as EOS a token the free run emits for the first time at some step k > 0: with
    # the same seed the run is identical up to there.
    k = next(i for i, t in enumerate(free) if i > 0 and t not in free[:i])
    stopped = gen(model, [p, primer(4)], max_new_tokens=60, temperature=HOT, seed=2, eos_id=free[k])
    assert stopped[0] == free[:k]
    assert free[k] not in stopped[1]


def test_stops_after_the_requested_seconds_of_music() -> None:
    model = tiny_model()
    seconds = torch.rand(VOCAB, generator=torch.Generator().manual_seed(5)) * 0.2
    out = gen(
        model,
        [primer(5), primer(9, seed=6)],
        max_new_tokens=500,
        seed=1,
        max_seconds=2.0,
        token_seconds=seconds,
    )
    for row in out:
        total = float(seconds[row].sum())
        assert total >= 2.0 - 1e-6
        assert total - float(seconds[row[-1]]) < 2.0  # it stopped at the first crossing


def test_progress_reports_every_new_token_and_second() -> None:
    model = tiny_model()
    seconds = torch.full((VOCAB,), 0.01)
    seen = []
    out = gen(
        model,
        [primer(3), primer(11)],
        max_new_tokens=50,
        seed=0,
        token_seconds=seconds,
        progress=lambda n, s: seen.append((n, s)),
    )
    assert sum(n for n, _ in seen) == sum(len(r) for r in out) == 100
    # 100 durations of fp32 0.01 (each within 2^-24 of it) summed in float64: ≤ 6e-8 off
    assert sum(s for _, s in seen) == pytest.approx(1.0, rel=1e-6)


def test_suppressed_ids_are_never_sampled() -> None:
    model = tiny_model()
    p = primer(5)
    free = gen(model, [p], max_new_tokens=200, temperature=HOT, seed=0)[0]
    banned = sorted(set(free))[:5]
    out = gen(model, [p], max_new_tokens=200, temperature=HOT, seed=0, suppress_ids=banned)
    assert not set(out[0]) & set(banned)


@pytest.mark.parametrize("training", [True, False])
def test_the_model_mode_is_left_as_found(training: bool) -> None:
    model = tiny_model(dropout=0.2)
    model.train(training)
    a = gen(model, [primer(5)], max_new_tokens=10, temperature=0)
    assert model.training is training
    b = gen(model, [primer(5)], max_new_tokens=10, temperature=0)
    assert a == b  # dropout was off while sampling


def test_bf16_autocast_runs_and_mostly_agrees_with_fp32() -> None:
    model = tiny_model()
    p = primer(16)
    fp32 = gen(model, [p], max_new_tokens=20, temperature=0)[0]
    bf16 = gen(model, [p], max_new_tokens=20, temperature=0, precision="bf16")[0]
    assert len(bf16) == 20
    assert bf16[:3] == fp32[:3]  # rounding may change a later choice, not the first ones


@pytest.mark.parametrize(
    "kwargs",
    [
        {"temperature": -0.5},
        {"temperature": float("nan")},
        {"top_p": 1.5},
        {"top_p": 0.0},
        {"top_k": 0},
        {"max_new_tokens": 0},
        {"max_seconds": 1.0},  # without token_seconds
        {"window": 1},
        {"precision": "fp8"},
    ],
    ids=lambda kw: next(iter(kw)),
)
def test_bad_settings_raise_one_line_value_errors(kwargs: dict) -> None:
    model = tiny_model()
    args = {"max_new_tokens": 5, **kwargs}
    with pytest.raises(SamplingError) as info:
        gen(model, [primer(3)], **args)
    assert "\n" not in str(info.value)


def test_empty_primers_and_unknown_ids_are_refused() -> None:
    for primers in ([[1, 2], []], [], [[1, VOCAB]], [[-1, 2]]):
        with pytest.raises(SamplingError):
            gen(tiny_model(), primers, max_new_tokens=3)


def test_decoding_steps_use_the_measured_threads_and_give_them_back(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSIC_TRANSFORMER_CACHE", str(tmp_path))
    calibration.forget()
    model, before = tiny_model(), torch.get_num_threads()
    seen: list[int] = []
    try:
        torch.set_num_threads(2)  # this project's CPU
        gen(model, [primer(5)], max_new_tokens=6, seed=0,
                 progress=lambda n, s: seen.append(torch.get_num_threads()))  # fmt: skip
        window = default_window(model)
        chosen = calibration.choose_decode_threads(torch.device("cpu"), model.config, 1, window)
        assert chosen in (1, 2) and seen == [chosen] * 6 and torch.get_num_threads() == 2
        for asked in (1, 2):  # a caller's own thread policy wins over the measured one
            seen.clear()
            settings = SamplingSettings(tokens=6, seed=0, precision="fp32")
            generate(model, [primer(5)], settings, threads=asked,
                     progress=lambda n, s: seen.append(torch.get_num_threads()))  # fmt: skip
            assert seen == [asked] * 6 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
        calibration.forget()


def test_generate_reports_why_each_row_stopped_and_how_it_ran() -> None:
    model = tiny_model()
    p = primer(7)
    durations = torch.full((VOCAB,), 0.1)
    free = gen(model, [p], 60, temperature=HOT, seed=2)[0]
    k = next(i for i, t in enumerate(free) if i > 0 and t not in free[:i])
    info = TokenInfo(eos_id=free[k], token_seconds=durations)
    settings = SamplingSettings(tokens=60, seconds=3.0, temperature=HOT, seed=2, window=32,
                                precision="fp32", allow_early_end=True)  # fmt: skip
    rows = generate(model, [p, p], settings, info)
    assert rows[0].stopped_by == "eos" and rows[0].tokens == free[:k]  # k < 30: EOS first
    assert rows[0].seconds == pytest.approx(0.1 * k, rel=1e-6)  # k fp32 0.1s: ≤ 2^-24 each
    assert (rows[0].window, rows[0].precision) == (32, "fp32")
    budget = generate(model, [p], SamplingSettings(tokens=5, precision="fp32"))[0]
    assert (budget.stopped_by, len(budget.tokens), budget.window) == ("tokens", 5, 256)
    by_seconds = generate(model, [p], SamplingSettings(tokens=500, seconds=1.0, seed=0),
                          TokenInfo(token_seconds=durations))[0]  # fmt: skip
    assert by_seconds.stopped_by == "seconds" and len(by_seconds.tokens) == 10
    timed = generate(model, [p], SamplingSettings(tokens=100_000, time_limit=0.05, seed=0))[0]
    assert timed.stopped_by == "time_limit" and 0 < len(timed.tokens) < 100_000
    lstm = generate(tiny_model("lstm"), [p], SamplingSettings(tokens=3, precision="fp32"))[0]
    assert lstm.window is None and len(lstm.tokens) == 3


@pytest.mark.parametrize("arch", ARCHS)
def test_a_long_primer_read_in_chunks_gives_the_same_continuation(arch, monkeypatch) -> None:

    model = tiny_model(arch)
    primers = [primer(70, seed=3), primer(45, seed=4)]  # left padding inside the first chunk
    settings = SamplingSettings(tokens=30, temperature=0, window=512, precision="fp32")
    whole = [g.tokens for g in generate(model, primers, settings)]
    read: list[tuple[int, int]] = []

    def progress(tokens: int, seconds: float) -> None:
        pass

    progress.prefill = lambda done, total: read.append((done, total))
    monkeypatch.setattr(sampler, "PREFILL_CHUNK", 16)
    chunked = [g.tokens for g in generate(model, primers, settings, progress=progress)]
    assert chunked == whole
    assert read[-1] == (70, 70) and len(read) == 5  # 16, 32, 48, 64, 70


def _sinks_reference(model, prompt, steps, window, k, temperature, hop, seed=1):
    """Decoding without a cache where the context is the whole history while it fits in
    `window`; then, each time it would hold more than `window` tokens, the first k context
    tokens + the last window - hop - k of the history, growing again to `window`."""
    from music_transformer.generation.picker import TokenPicker

    pick = TokenPicker(1, torch.device("cpu"), temperature, seed=seed)
    start = prompt[-window:]
    history = list(start)
    recent = None  # tokens of the history after the sinks, once the context has slid
    with torch.inference_mode():
        for _ in range(steps):
            full = len(history) > window if recent is None else k + recent > window
            if full:  # slide: the sinks and the newest window - hop - k (+ the token fed)
                recent = window - hop - k + 1
            ctx = history if recent is None else start[:k] + history[-recent:]
            logits, _ = model(torch.tensor([ctx]))  # (1, T, V)
            history.append(int(pick(logits[:, -1])))
            recent = None if recent is None else recent + 1
    return history[len(start) :]


@pytest.mark.parametrize("temperature", [0.0, HOT])
@pytest.mark.parametrize(("window", "k"), [(16, 3), (64, 6)])  # hop 1, hop 7
def test_attention_sinks_keep_each_rows_first_tokens_one_layer(
    temperature: float, window: int, k: int
) -> None:
    """One layer (keys depend only on their token): with `sink_tokens` k the slid cache
    attends to the first k context tokens + the newest tokens (window - hop - k after each
    slide, growing back to window - k), row by row, whatever the other rows' lengths (left
    padding)."""
    model = tiny_model(n_layers=1)
    hop = sampler.sink_hop(window, k)
    assert hop == (1 if window == 16 else 7)
    prompts = [primer(10, seed=2), primer(40, seed=3)]
    kw = {"temperature": temperature, "seed": 1, "window": window, "sink_tokens": k}
    for p in prompts:
        assert gen(model, [p], 100, **kw)[0] == _sinks_reference(
            model, p, 100, window, k, temperature, hop
        )
    batched = gen(model, prompts, 100, **kw)
    assert batched[0] == gen(model, [prompts[0]], 100, **kw)[0]
    assert batched[1] == gen(model, [prompts[1]], 100, **{**kw, "seed": 2})[0]
    assert batched[0] != gen(model, [prompts[0]], 100, **{**kw, "sink_tokens": None})[0]


@pytest.mark.parametrize(("window", "k"), [(8, 5), (2, 1)])
def test_sinks_that_leave_no_room_for_new_tokens_are_refused(window: int, k: int) -> None:
    """More sinks than half the window, or a window the sinks and one hop fill: refused."""
    with pytest.raises(SamplingError, match="sink_tokens"):
        gen(tiny_model(), [primer(10, seed=2)], 4, window=window, sink_tokens=k)


def test_attention_sinks_slide_each_row_on_its_own_schedule() -> None:
    """A deeper model, hop 7: rows of different lengths slide at different steps, and each
    row's continuation is the one it has alone (no row depends on its neighbours)."""
    model = tiny_model()
    assert sampler.sink_hop(64, 6) == 7
    prompts = [primer(10, seed=2), primer(40, seed=3), primer(63, seed=4)]
    kw = {"temperature": HOT, "seed": 1, "window": 64, "sink_tokens": 6}
    batched = gen(model, prompts, 120, **kw)
    for i, p in enumerate(prompts):
        assert batched[i] == gen(model, [p], 120, **{**kw, "seed": 1 + i})[0]
