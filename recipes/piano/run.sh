#!/usr/bin/env bash
# Reproduce the bundled piano models: prepare the classical-piano collection (performance
# tokens, split 0.9/0.05/0.05 by file, deterministic), train the relative Music Transformer and
# the LSTM baseline on the same data, augmentation and budget (each ≈ 2 h on a 2-core CPU),
# bundle both (bf16) with 3 test-split primers, then measure them: test NLL by position, and
# the pianist's measurements on ≥ 20 test-split primers (recipes/piano/pianist.py).
#
# Usage: recipes/piano/run.sh [--resume]
# Environment: PIECES [../shared/data/classical-piano], DATA [data/piano], RUNS [runs/piano],
#              PRECISION [bf16: measured faster for the Transformer on AVX512-BF16 / AMX CPUs]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=recipes/common.sh
source "$here/../common.sh"  # project root, OMP_WAIT_POLICY, MT, PY, resume_args, write_output
PIECES=${PIECES:-../shared/data/classical-piano}
DATA=${DATA:-data/piano}
RUNS=${RUNS:-runs/piano}
PRECISION=${PRECISION:-bf16}
resume=0
[ "${1:-}" = "--resume" ] && resume=1

[ -f "$DATA/manifest.json" ] || "$MT" prepare "$PIECES" --out "$DATA" --tokenizer performance

for m in transformer lstm; do
  run=$RUNS/$m
  resume_args "$resume" "$run"
  [ -f "$run/best/config.json" ] && [ ${#again[@]} -eq 0 ] && { echo "== $run done"; continue; }
  echo "== train $m -> $run"
  "$MT" train --config "$here/$m.toml" --data "$DATA" --out "$run" --precision "$PRECISION" \
    "${again[@]}"
done

"$PY" "$here/bundle.py" "$RUNS/transformer" piano-transformer --data "$DATA" --primers 3 \
  --temperature 1.0 --guard
"$PY" "$here/bundle.py" "$RUNS/lstm" piano-lstm --data "$DATA" --temperature 1.0
for m in piano-transformer piano-lstm; do
  write_output "$RUNS/eval-$m.json" "$MT" evaluate "$m" --data "$DATA" --split test --json -q
  "$MT" evaluate "$m" --data "$DATA" --split test --window 1024 -q
done
"$PY" "$here/pianist.py" --models piano-transformer,piano-lstm,bach-transformer --data "$DATA" \
  --pieces "$PIECES" --nll --out "$RUNS/pianist.json"
