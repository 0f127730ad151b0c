#!/usr/bin/env bash
# Set up (if needed), then continue a bundled piano primer with the bundled piano Transformer.
# Writes demo-out/continuation.mid (and .wav when FluidSynth is installed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
MT=.venv/bin/music-transformer
PRIMERS=music_transformer/bundled/primers
if [ ! -d music_transformer/bundled/piano-transformer ]; then
  echo "No bundled model yet: preparing the Bach chorales so you can train one:"
  $MT prepare music21:bach --out data/bach
  echo "Now train:  $MT train --data data/bach --out runs/bach --preset small"
  exit 0
fi
primer=$(ls "$PRIMERS"/piano-*.mid | head -n 1)
wav=()
command -v fluidsynth >/dev/null 2>&1 && wav=(--wav)  # WAV too when FluidSynth is installed
mkdir -p demo-out
$MT continue "$primer" -o demo-out/continuation.mid --model piano-transformer \
  --seconds 30 --seed 1 --force "${wav[@]}" "$@"
