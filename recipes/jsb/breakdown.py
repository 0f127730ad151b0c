"""Where a JSB model's NLL comes from: by voice (S, A, T, B) and by whether the token repeats
the same voice's previous step ("held": 79% of the valid split) or changes it.

Usage: python recipes/jsb/breakdown.py MODEL DATA_DIR [--split valid] [--context 1024]
                                       [--max-pieces N]
  MODEL is a bundled name, a run or a checkpoint directory; DATA_DIR was prepared with
  `--tokenizer jsb`. Scores each piece in windows of `--context` tokens (as `evaluate` does)
  and prints a Markdown table of mean nats per token.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from midi_data import eval_windows
from midi_data.dataset import open_data
from music_transformer.checkpoint import load_checkpoint

VOICES = ("soprano", "alto", "tenor", "bass")


@torch.inference_mode()
def token_nll(model, piece: torch.Tensor, context: int) -> torch.Tensor:
    """(n-1,) nats of every token after the first of `piece`, in windows of `context`."""
    parts = []
    for window in eval_windows([piece], context):
        window = torch.as_tensor(window)  # (n,)
        logits, _ = model(window[None, :-1])  # (1, T, V)
        parts.append(F.cross_entropy(logits[0].float(), window[1:], reduction="none"))  # (T,)
    return torch.cat(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--split", default="valid")
    ap.add_argument("--context", type=int, default=1024)
    ap.add_argument("--max-pieces", type=int, default=0, help="score only the first N pieces")
    args = ap.parse_args()
    loaded = load_checkpoint(args.model)
    tok = loaded.tokenizer
    sums = {(v, held): [0.0, 0] for v in range(4) for held in (True, False)}
    other = [0.0, 0]  # EOS
    pieces = open_data(args.data).pieces(args.split)
    for piece in pieces[: args.max_pieces or None]:
        ids = torch.as_tensor(piece.astype("int64"))
        nll = token_nll(loaded.model, ids, args.context)
        for i, (target, nats) in enumerate(zip(ids[1:].tolist(), nll.tolist())):
            pos = i  # position among the events after BOS: voice = pos % 4
            if target in (tok.eos_id, tok.pad_id, tok.bos_id):
                other[0], other[1] = other[0] + nats, other[1] + 1
                continue
            voice = pos % 4
            held = pos >= 4 and int(ids[1 + pos - 4]) == target
            cell = sums[voice, held]
            cell[0], cell[1] = cell[0] + nats, cell[1] + 1
    total = sum(s for s, _ in sums.values()) + other[0]
    count = sum(n for _, n in sums.values()) + other[1]
    print(
        f"{args.model} on {args.split}, windows of {args.context}: {total / count:.4f} nats "
        f"per token over {count:,} tokens\n"
    )
    print("| voice | held: share of tokens | held: nats | changed: nats | all: nats |")
    print("|---|---|---|---|---|")
    for v, name in enumerate(VOICES):
        h, c = sums[v, True], sums[v, False]
        n = h[1] + c[1]
        print(
            f"| {name} | {h[1] / n:.1%} | {h[0] / max(h[1], 1):.3f} "
            f"| {c[0] / max(c[1], 1):.3f} | {(h[0] + c[0]) / n:.3f} |"
        )
    h = [sum(sums[v, True][i] for v in range(4)) for i in (0, 1)]
    c = [sum(sums[v, False][i] for v in range(4)) for i in (0, 1)]
    print(
        f"| all voices | {h[1] / (h[1] + c[1]):.1%} | {h[0] / h[1]:.3f} | {c[0] / c[1]:.3f} "
        f"| {(h[0] + c[0]) / (h[1] + c[1]):.3f} |"
    )
    print(
        f"\nShare of the total NLL: held {h[0] / total:.1%}, changed {c[0] / total:.1%}, "
        f"EOS {other[0] / total:.1%} ({other[1]} tokens)."
    )


if __name__ == "__main__":
    main()
