#!/usr/bin/env bash
# The third release's piano models (issue 30): classical piano AND pop songs arranged for piano,
# one `performance` stream. Every step is skipped when its output exists, so the script can be
# stopped and started again across sessions (training resumes from its last checkpoint).
#
#   recipes/piano/mixed.sh train      prepare the data; train the Transformer and the LSTM to
#                                     an equal budget (75.4M tokens each, warm starts included)
#   recipes/piano/mixed.sh measure    test/valid NLL per genre (window 1,024, by position) and
#                                     180-s continuations of the 24 VALID primers for each
#                                     setting in SWEEP, judged against their genre
#   recipes/piano/mixed.sh ship       bundle both with the chosen TEMPERATURE and SINKS, then
#                                     the 24 TEST primers x 180 s at the CLI's defaults, judged,
#                                     the ten MAESTRO primers (unseen piano) likewise, and the
#                                     pianist's measurements
#
# Environment: DATA [data/piano2], RUNS [runs/piano2], THREADS [1: the two runs share a
# 2-core CPU, a thread each; one LSTM thread is as fast as two there], TEMPERATURE [1.0],
# GUARD [1: on by default; 0: off], SINKS [512], SWEEP (name:generate options;... as below).
# The Transformer warm-starts from the SECOND release's piano-transformer and the LSTM from its
# piano-lstm (`init` in the tomls): once `ship` has replaced them, a rerun from scratch needs
# those weights back (git show v2-commit:music_transformer/bundled/...).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=recipes/common.sh
source "$here/../common.sh"
DATA=${DATA:-data/piano2}
RUNS=${RUNS:-runs/piano2}
THREADS=${THREADS:-1}
TEMPERATURE=${TEMPERATURE:-1.0}
SINKS=${SINKS:-512}
GUARD=${GUARD:-1}
SWEEP=${SWEEP:-"t10-guard-s512:--temperature 1.0 --guard --sink-tokens 512;t10-guard-s256:--temperature 1.0 --guard --sink-tokens 256;t095-guard-s512:--temperature 0.95 --guard --sink-tokens 512;t10-guard:--temperature 1.0 --guard --sink-tokens 0;t10-s512:--temperature 1.0 --no-guard --sink-tokens 512"}
GENRES=(classical-piano pop909)
SHARED=../shared/data
LONG=$RUNS/longform

prepare() {
  [ -f "$DATA/manifest.json" ] ||
    "$MT" prepare "$SHARED/classical-piano" "$SHARED/pop909" --out "$DATA" \
      --tokenizer-from piano-transformer
  for g in "${GENRES[@]}"; do  # each genre alone: the same per-source split as in $DATA
    [ -f "data/$g/manifest.json" ] ||
      "$MT" prepare "$SHARED/$g" --out "data/$g" --tokenizer-from piano-transformer
  done
  for split in valid test; do
    [ -d "$LONG/primers-$split" ] ||
      "$PY" "$here/split_primers.py" "$DATA" "$split" "$LONG/primers-$split" --per-source 12
  done
}

train_one() {  # train_one NAME TOML STEPS
  local run=$RUNS/$1
  resume_args 1 "$run"
  if [ ${#again[@]} -gt 0 ]; then
    OMP_NUM_THREADS=$THREADS "$MT" train --out "$run" --resume --max-steps "$3" -q
  else
    OMP_NUM_THREADS=$THREADS "$MT" train --config "$here/$2" --data "$DATA" --out "$run" \
      --max-steps "$3" -q
  fi
}

train() {
  prepare
  # 24.6M (warm start) + 6,200 x 8 x 1,024 = 75.4M; 12.3M + 7,700 x 8,192 = 75.4M
  train_one transformer mixed-transformer.toml 6200 &
  train_one lstm mixed-lstm.toml 7700 &
  wait
}

# continue_and_judge OUT MODEL SPLIT [generate options...]: 180 s from each primer of SPLIT
continue_and_judge() {
  local out=$1 model=$2 split=$3
  shift 3
  for g in "${GENRES[@]}"; do
    [ -f "$out/$g/manifest.json" ] ||
      "$MT" generate --model "$model" --primers "$LONG/primers-$split/$g" --primer-seconds 12 \
        --seconds 180 --seed 1 --batch-size 12 --out "$out/$g" -q "$@"
    [ -f "$out/judged-$g/judge.json" ] ||
      "$MT" judge "$out/$g" -r "$g=$SHARED/$g" -o "$out/judged-$g" -j 1 | tail -1
  done
}

measure() {
  prepare
  mkdir -p "$RUNS/eval"
  for m in transformer lstm; do
    for g in "${GENRES[@]}"; do
      for split in valid test; do
        local out=$RUNS/eval/$m-$g-$split.json window=(--window 1024)
        [ "$m" = lstm ] && window=()
        [ -f "$out" ] || write_output "$out" "$MT" evaluate "$RUNS/$m/best" --data "data/$g" \
          --split "$split" "${window[@]}" --json -q
      done
    done
  done
  local setting
  IFS=';' read -r -a settings <<< "$SWEEP"
  for setting in "${settings[@]}"; do
    # shellcheck disable=SC2086  # the options are words
    continue_and_judge "$LONG/valid/${setting%%:*}" "$RUNS/transformer/best" valid ${setting#*:}
  done
  continue_and_judge "$LONG/valid/lstm" "$RUNS/lstm/best" valid
  # a guard (and sinks) stay on by default only if they do not hurt the pianist's measurements
  for g in "${GENRES[@]}"; do
    for cfg in "guard-s$SINKS:--guard on --sink-tokens $SINKS" "plain:--guard off --sink-tokens 0"; do
      local out=$RUNS/pianist-valid-$g-${cfg%%:*}.json
      # shellcheck disable=SC2086  # the options are words
      [ -f "$out" ] || "$PY" "$here/pianist.py" --models "$RUNS/transformer/best" \
        --data "data/$g" --pieces "$SHARED/$g" --split valid --max-primers 24 --seed 1 \
        --temperature "$TEMPERATURE" ${cfg#*:} --out "$out"
    done
  done
}

ship() {
  # By hand after this: bundled/primers/NOTICE.md names the new pop909-*.mid primers (POP909,
  # MIT: its copyright and permission notice go with them); MODEL_CARD states both licenses of
  # the weights (CC BY-SA 3.0 DE and MIT), the chosen defaults and their measurements.
  local guard=(--guard)
  [ "$GUARD" = 1 ] || guard=()
  "$PY" "$here/bundle.py" "$RUNS/transformer" piano-transformer --data "$DATA" --primers 3 \
    --temperature "$TEMPERATURE" "${guard[@]}" --sink-tokens "$SINKS"
  "$PY" "$here/bundle.py" "$RUNS/lstm" piano-lstm --data "$DATA" --temperature 1.0
  for m in piano-transformer piano-lstm; do  # the CLI's defaults: the cards' settings
    continue_and_judge "$LONG/test/$m" "$m" test
  done
  # piano the models never trained on: the ten MAESTRO performances (NC license: primers only),
  # judged against the classical corpus
  for m in piano-transformer piano-lstm; do
    local out=$LONG/maestro/$m
    [ -f "$out/manifest.json" ] ||
      "$MT" generate --model "$m" --primers "$SHARED/maestro-samples" --primer-seconds 12 \
        --seconds 180 --seed 1 --batch-size 10 --out "$out" -q
    [ -f "$out-judged/judge.json" ] ||
      "$MT" judge "$out" -r "classical-piano=$SHARED/classical-piano" -o "$out-judged" -j 1 |
      tail -1
  done
  for g in "${GENRES[@]}"; do
    [ -f "$RUNS/pianist-$g.json" ] ||
      "$PY" "$here/pianist.py" --models piano-transformer,piano-lstm --data "data/$g" \
        --pieces "$SHARED/$g" --max-primers 24 --seed 1 --out "$RUNS/pianist-$g.json"
  done
}

case "${1:-}" in
  train | measure | ship) "$1" ;;
  *) echo "usage: recipes/piano/mixed.sh train|measure|ship" >&2; exit 2 ;;
esac
