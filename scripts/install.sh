#!/usr/bin/env bash
# Install vlthinker and everything it needs into the current Python environment.
# Where no torch is installed yet, take the CPU build 2.13.0 first so that the
# resolver never pulls the multi-GB CUDA wheels; a machine that already has a
# (CUDA) torch keeps it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
    "$PY" -m pip install "torch==2.13.0"
fi
"$PY" -m pip install -e ".[dev]" "$@"
