#!/usr/bin/env bash
# Set up (if needed) and run the linter and the whole test suite on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Passive OpenMP waiting: spinning threads slow a shared 2-core machine several-fold.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
