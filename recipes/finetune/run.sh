#!/usr/bin/env bash
# Fine-tune piano-transformer on a folder of ~20 pieces and measure what it does to NLL on
# the pieces held out of that folder (the README's walk-through; numbers in MODEL_CARD.md).
# The folder here is 20 Bach chorales from music21's corpus — a style the piano model never
# saw; point PIECES at your own folder instead.
#
# Usage: recipes/finetune/run.sh        Environment: PIECES, OUT [runs/finetune], STEPS [120]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=recipes/common.sh
source "$here/../common.sh"  # project root, OMP_WAIT_POLICY, MT, PY, resume_args, write_output
OUT=${OUT:-runs/finetune}
STEPS=${STEPS:-120}
if [ -z "${PIECES:-}" ]; then
  PIECES=$OUT/pieces
  [ -d "$PIECES" ] || .venv/bin/python "$here/chorales.py" "$PIECES" --count 20
fi

# The model's own tokenizer, and a split by piece: ~70% to fine-tune on, the rest held out.
"$MT" prepare "$PIECES" --out "$OUT/data" --tokenizer-from piano-transformer \
  --split 0.7,0.1,0.2 --force --quiet  # --force: a rerun replaces its own data
write_output "$OUT/before.json" "$MT" evaluate piano-transformer --data "$OUT/data" \
  --split test --context 2048 --json -q
/usr/bin/time -f "fine-tuning wall clock: %e s" \
  "$MT" train --init piano-transformer --data "$OUT/data" --out "$OUT/run" \
  --max-steps "$STEPS" --seq-len 512 --batch-size 8 --lr 3e-4 --warmup-steps 10 \
  --eval-every 20 --save-every 20 --quiet
write_output "$OUT/after.json" "$MT" evaluate "$OUT/run/best" --data "$OUT/data" \
  --split test --context 2048 --json -q
"$PY" - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
b, a = (json.load(open(f"{out}/{n}.json")) for n in ("before", "after"))
print(f"held-out NLL: piano-transformer {b['nll']:.3f} → fine-tuned {a['nll']:.3f} nats/token")
PY
