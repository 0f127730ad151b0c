#!/usr/bin/env bash
# Set up a local virtual environment (.venv) with a CPU build of PyTorch and this package.
# Idempotent: a second run only checks. Used by scripts/demo.sh, scripts/test.sh and .ci/run.
#
# CUDA users: create .venv yourself and install a CUDA build of torch into it first
# (see PyTorch's "get started" selector); this script keeps a torch that is already installed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)

# Pinned CPU torch first: an unpinned `torch` would pull a multi-GB CUDA build.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  "${PIP[@]}" install "torch==${TORCH_VERSION:-2.13.0}"
fi
if ! .venv/bin/python -c "import music_transformer, midi_data, cli, pytest, ruff" 2>/dev/null \
   || [ pyproject.toml -nt .venv/.installed ]; then
  "${PIP[@]}" install -e ".[dev]"
  touch .venv/.installed
fi

# Optional Debian packages, installed with apt-get when we are root (`apt-get update` runs at
# most once). A failure only prints a note: everything else works without them.
can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }
APT_UPDATED=""  # "", "ok" or "failed"
apt_install() {  # apt_install PACKAGE...: returns non-zero on failure (callers print a note)
  if [ -z "$APT_UPDATED" ]; then
    if apt-get update -qq; then APT_UPDATED=ok; else APT_UPDATED=failed; fi
  fi
  [ "$APT_UPDATED" = ok ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "$@" >/dev/null
}

# Audio rendering (WAV files) needs FluidSynth and a General MIDI soundfont.
# Optional: the commands that need them say so.
if ! command -v fluidsynth >/dev/null 2>&1 || ! ls /usr/share/sounds/sf2/*.sf2 >/dev/null 2>&1; then
  if can_apt; then
    echo "Installing fluidsynth and a General MIDI soundfont (apt-get) ..."
    apt_install fluidsynth timgm6mb-soundfont \
      || echo "Note: could not install fluidsynth; WAV rendering will be unavailable."
  else
    echo "Note: install the Debian packages 'fluidsynth' and 'timgm6mb-soundfont' for WAV output."
  fi
fi

# A headless browser for the test that opens a `compare` page (tests/test_compare.py), which
# skips without one.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 \
   && ! command -v google-chrome >/dev/null 2>&1; then
  if can_apt; then
    echo "Installing chromium (apt-get) ..."
    apt_install chromium \
      || echo "Note: could not install chromium; the browser test of compare pages will skip."
  else
    echo "Note: install the Debian package 'chromium' to run the browser test of compare pages."
  fi
fi
