# shellcheck shell=bash
# Sourced by every recipes/*/run.sh (not run on its own): the shared set-up and helpers.
# Moves to the project root; OMP_WAIT_POLICY=PASSIVE unless set (spinning OpenMP threads
# slowed work 3-8x on a shared 2-core CPU); MT and PY default to the venv's CLI and Python.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
MT=${MT:-.venv/bin/music-transformer}
PY=${PY:-.venv/bin/python}

# resume_args WANT RUN: sets the array `again` to (--resume) when WANT is 1 and RUN holds a
# started run (one stopped before its first checkpoint is started over by `train --resume`),
# else to () — pass it on as "${again[@]}".
# shellcheck disable=SC2034  # `again` is read by the sourcing script
resume_args() {
  again=()
  if [ "$1" = 1 ] && { [ -f "$2/last/train_state.pt" ] || [ -f "$2/metrics.jsonl" ]; }; then
    again=(--resume)
  fi
}

# write_output FILE CMD...: CMD's standard output into FILE, renamed into place only when CMD
# succeeds (a failed or interrupted command leaves no half-written FILE).
write_output() {
  local out=$1
  shift
  "$@" > "$out.tmp"
  mv "$out.tmp" "$out"
}
