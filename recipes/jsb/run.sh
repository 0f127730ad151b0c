#!/usr/bin/env bash
# Reproduce the Music Transformer paper's JSB Chorales experiment (Table 2): prepare the
# official 229/76/77 split as raster-scanned S A T B tokens, train the relative Transformer,
# the absolute-position baseline and the LSTM (each selected on valid NLL), then evaluate
# them on valid and test and write RUNS/results.md and the validation curves RUNS/curves.png.
#
# Usage: recipes/jsb/run.sh [--resume] [MODEL...]
#   MODEL       default: every Table 2 row and the LSTM (absolute absolute-concat
#               absolute-concat-voice relative relative-concat-voice relative-pitch-time
#               lstm), or any other recipes/jsb/<MODEL>.toml, e.g. relative-transpose (the first
#               recipe's jsb-relative) or first/relative (the first recipe).
#   --resume    continue runs that were interrupted (finished runs are only re-evaluated).
# Environment (defaults in brackets):
#   JSB_JSON    [../shared/data/jsb-chorales/Jsb16thSeparated.json]
#   DATA        prepared data directory [data/jsb]
#   RUNS        one run directory per MODEL under it [runs/jsb]
#   TRAIN_ARGS  extra `train` options, e.g. "--max-steps 20" for a trial run
#   EVAL_ARGS   extra `evaluate` options, e.g. "--max-pieces 4" for a trial run
#   MT, PY      the CLI and Python [.venv/bin/music-transformer, .venv/bin/python]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=recipes/common.sh
source "$here/../common.sh"  # project root, OMP_WAIT_POLICY, MT, PY, resume_args, write_output
JSB_JSON=${JSB_JSON:-../shared/data/jsb-chorales/Jsb16thSeparated.json}
DATA=${DATA:-data/jsb}
RUNS=${RUNS:-runs/jsb}
read -r -a train_args <<< "${TRAIN_ARGS:-}"
read -r -a eval_args <<< "${EVAL_ARGS:-}"

resume=0
models=()
for arg in "$@"; do
  case $arg in
    --resume) resume=1 ;;
    -h|--help) sed -n '2,19p' "$0" | cut -c3-; exit 0 ;;
    -*) echo "Error: unknown option $arg (see --help)" >&2; exit 2 ;;
    *) models+=("$arg") ;;
  esac
done
[ ${#models[@]} -gt 0 ] || models=(absolute absolute-concat absolute-concat-voice relative
  relative-concat-voice relative-pitch-time lstm)
for m in "${models[@]}"; do
  [ -f "$here/$m.toml" ] || { echo "Error: no recipe $here/$m.toml" >&2; exit 2; }
done

# 1. Data: Jsb16thSeparated.json keeps its own train/valid/test split.
if [ ! -f "$DATA/manifest.json" ]; then
  "$MT" prepare "$JSB_JSON" --out "$DATA" --tokenizer jsb --quiet
fi

# 2. Training. RUNS/<model>/best is the checkpoint with the lowest valid NLL.
for m in "${models[@]}"; do
  run=$RUNS/$m
  resume_args $resume "$run"
  echo "== train $m -> $run"
  "$MT" train --config "$here/$m.toml" --data "$DATA" --out "$run" "${again[@]}" \
    "${train_args[@]}"
done

# 3. Evaluation of RUNS/<model>/best: windows of the training length (1024 tokens, as in
# validation during training), and whole pieces in one window (context 4096 > the longest
# chorale's 2,562 tokens) for the NLL by position past the training length.
for m in "${models[@]}"; do
  for split in valid test; do
    for context in 1024 4096; do
      out=$RUNS/$m/eval-$split-$context.json
      echo "== evaluate $m on $split, context $context -> $out"
      write_output "$out" "$MT" evaluate "$RUNS/$m" --data "$DATA" --split "$split" \
        --context $context --batch-size 8 --json "${eval_args[@]}"
    done
  done
done

# 4. The table beside the paper's numbers; the validation curves (RUNS/curves.png and .md).
write_output "$RUNS/results.md" "$PY" "$here/table.py" "$RUNS" "${models[@]}"
write_output "$RUNS/curves.md" "$PY" "$here/curves.py" "$RUNS" "${models[@]}" \
  --png "$RUNS/curves.png"
cat "$RUNS/results.md" "$RUNS/curves.md"
