#!/usr/bin/env bash
# bf16 vs fp32 learning parity (issue 20): train parity.toml (a shortened JSB recipe) in fp32
# and in bf16 autocast from seeds 1 and 2, evaluate every best checkpoint on valid in both
# precisions, and write RUNS/results.md (valid NLL by step, bf16-vs-fp32 gap per seed beside
# the seed-to-seed gap of each precision).
#
# Usage: recipes/precision/run.sh [--resume]
#   --resume    continue interrupted runs (finished ones are only re-evaluated).
# Environment (defaults in brackets):
#   JSB_JSON    [../shared/data/jsb-chorales/Jsb16thSeparated.json]
#   DATA        prepared data directory [data/jsb]
#   RUNS        one run directory per precision and seed under it [runs/precision]
#   SEEDS       [1 2]
#   TRAIN_ARGS  extra `train` options, e.g. "--max-steps 20" for a trial run
#   EVAL_ARGS   extra `evaluate` options, e.g. "--max-pieces 4" for a trial run
#   MT, PY      the CLI and Python [.venv/bin/music-transformer, .venv/bin/python]
# On a CPU without native bf16 (AVX2 only) each bf16 run takes ~10x an fp32 run (~70 min
# against ~7 on one thread of an AVX2 EPYC); OMP_NUM_THREADS=1 lets two runs share 2 cores.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=recipes/common.sh
source "$here/../common.sh"  # project root, OMP_WAIT_POLICY, MT, PY, resume_args, write_output
JSB_JSON=${JSB_JSON:-../shared/data/jsb-chorales/Jsb16thSeparated.json}
DATA=${DATA:-data/jsb}
RUNS=${RUNS:-runs/precision}
read -r -a seeds <<< "${SEEDS:-1 2}"
read -r -a train_args <<< "${TRAIN_ARGS:-}"
read -r -a eval_args <<< "${EVAL_ARGS:-}"
resume=0
for arg in "$@"; do
  case $arg in
    --resume) resume=1 ;;
    -h|--help) sed -n '2,18p' "$0" | cut -c3-; exit 0 ;;
    *) echo "Error: unknown argument $arg (see --help)" >&2; exit 2 ;;
  esac
done

[ -f "$DATA/manifest.json" ] || "$MT" prepare "$JSB_JSON" --out "$DATA" --tokenizer jsb --quiet

runs=()
for seed in "${seeds[@]}"; do
  for p in fp32 bf16; do
    run=$RUNS/$p-seed$seed
    runs+=("$run")
    resume_args $resume "$run"
    echo "== train $p, seed $seed -> $run"
    "$MT" train --config "$here/parity.toml" --data "$DATA" --out "$run" --precision "$p" \
      --seed "$seed" --quiet "${again[@]}" "${train_args[@]}"
    for e in fp32 bf16; do  # the same windows as validation during training (context = L)
      write_output "$run/eval-valid-$e.json" "$MT" evaluate "$run" --data "$DATA" \
        --split valid --context 256 --batch-size 8 --precision "$e" --json --quiet \
        "${eval_args[@]}"
    done
  done
done

"$PY" "$here/table.py" "${runs[@]}" | tee "$RUNS/results.md"
