#!/usr/bin/env bash
# Reproduce the bundled Bach models: prepare music21's Bach chorales (performance tokens), train
# the relative Music Transformer, the LSTM baseline and the absolute-position Transformer on the
# same data and budget, evaluate each on the untouched test split, and copy the best checkpoints
# (bf16) plus three test-split primers into music_transformer/bundled/.
#
# Usage: recipes/bach/run.sh [--resume]
# Environment: DATA [data/bach], RUNS [runs/bach], TRAIN_ARGS (extra `train` options).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=recipes/common.sh
source "$here/../common.sh"  # project root, OMP_WAIT_POLICY, MT, PY, resume_args, write_output
DATA=${DATA:-data/bach}
RUNS=${RUNS:-runs/bach}
read -r -a train_args <<< "${TRAIN_ARGS:-}"
resume=0
[ "${1:-}" = "--resume" ] && resume=1

# 1. Data: split 0.9/0.05/0.05 by a hash of each chorale's corpus path (deterministic).
[ -f "$DATA/manifest.json" ] || "$MT" prepare music21:bach --out "$DATA" --tokenizer performance

# 2. Training (each ≤ 90 minutes on a 2-core CPU with bf16); best/ = lowest valid NLL.
for m in transformer lstm absolute; do
  run=$RUNS/bach-$m
  resume_args $resume "$run"
  [ -f "$run/best/config.json" ] && [ ${#again[@]} -eq 0 ] && { echo "== $run done"; continue; }
  echo "== train $m -> $run"
  "$MT" train --config "$here/$m.toml" --data "$DATA" --out "$run" "${again[@]}" "${train_args[@]}"
done

# 3. Bundle (bf16 weights + primers), then evaluate the shipped weights on the test split.
"$PY" "$here/bundle.py" "$DATA" "$RUNS"
for m in transformer lstm absolute; do
  write_output "$RUNS/eval-bach-$m.json" "$MT" evaluate "bach-$m" --data "$DATA" --split test --json
  "$MT" evaluate "bach-$m" --data "$DATA" --split test
done
