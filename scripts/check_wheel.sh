#!/usr/bin/env bash
# The wheel works on its own: build the sdist and the wheel with `python -m build`, install the
# wheel (not editable) in a new venv, and from a folder outside the repository run
# `vlthinker train` (one tiny step) and `vlthinker eval` (two items) on the embedded model. The
# packaged configs and the tiny checkpoint must come from the installed wheel.
#
#   bash scripts/check_wheel.sh                # a fresh venv: the wheel and its dependencies
#   WHEEL_VENV=system bash scripts/check_wheel.sh
#       # a venv over this Python's packages (--system-site-packages), the wheel installed
#       # --no-deps: no dependency is installed, so it runs in about a minute offline
#
# In a fresh venv torch is installed first as $TORCH_SPEC (default: the CPU build 2.13.0 that
# scripts/install.sh uses), so that pip never resolves the multi-GB CUDA wheels.
set -euo pipefail
unset PYTHONPATH  # the checks must import the installed wheel, nothing else
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
MODE=${WHEEL_VENV:-fresh}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/vlthinker-wheel.XXXXXX")
[ -n "${KEEP_WHEEL_CHECK:-}" ] || trap 'rm -rf "$WORK"' EXIT
step() { printf '\n== %s\n' "$*"; }

step "python -m build ($REPO)"
if ! "$PY" -m build --outdir "$WORK/dist" "$REPO" >"$WORK/build.log" 2>&1; then
    cat "$WORK/build.log"
    exit 1
fi
ls "$WORK"/dist/vlthinker-*.tar.gz >/dev/null
WHEEL=$(ls "$WORK"/dist/vlthinker-*.whl)
ls -l "$WORK/dist"
# the wheel must hold the assets and configs that `vlthinker train` reads
"$PY" - "$WHEEL" <<'EOF'
import sys
import zipfile

names = set(zipfile.ZipFile(sys.argv[1]).namelist())
needed = [
    "vlthinker/assets/tiny_vlm/model.safetensors",
    "vlthinker/assets/tiny_vlm/tokenizer.json",
    "vlthinker/configs/demo.yaml",
    "vlthinker/configs/openvlthinker-v2-qwen3vl-8b.yaml",
    "vlthinker/configs/accelerate/fsdp.yaml",
]
missing = [name for name in needed if name not in names]
assert not missing, f"the wheel lacks {missing}"
print(f"wheel holds {len(names)} files, the assets and configs among them")
EOF

step "install the wheel in a new venv ($MODE)"
# pip's notes on the index locations configured on this machine are left out
pip_install() { "$WORK/venv/bin/pip" install -q "$@" 2>&1 | { grep -v '^WARNING: Location' || true; }; }
if [ "$MODE" = system ]; then
    "$PY" -m venv --system-site-packages "$WORK/venv"
    pip_install --no-deps "$WHEEL"
else
    "$PY" -m venv "$WORK/venv"
    pip_install "${TORCH_SPEC:-torch==2.13.0}"
    pip_install "$WHEEL"
fi

cd "$WORK"  # outside the repository: nothing may be read from the source tree
"$WORK/venv/bin/python" - "$WORK/venv" <<'EOF'
import sys
from pathlib import Path

import vlthinker
from vlthinker.models import resolve_model_path
from vlthinker.train.cli import DEMO_CONFIG, packaged_config

venv = Path(sys.argv[1]).resolve()
for path in (Path(vlthinker.__file__), resolve_model_path("embedded:tiny_vlm"),
             packaged_config(DEMO_CONFIG)):  # fmt: skip
    assert venv in path.resolve().parents, f"{path} is not the installed wheel's"
print(f"vlthinker {vlthinker.__version__} from {Path(vlthinker.__file__).parent}")
EOF

step "vlthinker train (one step)"
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "$WORK/venv/bin/vlthinker" train \
    training.output_dir="$WORK/run" training.max_steps=1 training.save_steps=1 \
    training.eval_steps=1 training.prompts_per_step=6 training.per_device_batch_size=12 \
    training.eval_batch_size=6 training.eval_samples=1 rollout.num_generations=2 \
    rollout.max_new_tokens=8 data.train_size=12 data.validation_size=1 logging.progress=false
for file in metrics.jsonl results.md final/config.json; do
    test -s "$WORK/run/$file" || { echo "vlthinker train wrote no $file"; exit 1; }
done

step "vlthinker eval (two items)"
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "$WORK/venv/bin/vlthinker" eval --model embedded:tiny_vlm \
    --data synthetic --limit 2 --max-new-tokens 8 --out "$WORK/eval" --no-progress
test -s "$WORK/eval/results.md" || { echo "vlthinker eval wrote no results.md"; exit 1; }

step "the wheel works ($MODE venv)"
