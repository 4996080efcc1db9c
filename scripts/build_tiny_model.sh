#!/usr/bin/env bash
# Rebuild the embedded tiny model: an untrained tiny Qwen3-VL, then cold-start SFT on the
# synthetic suite with `vlthinker sft`. The result replaces src/vlthinker/assets/tiny_vlm.
# Build settings live here; the SFT summary (settings, loss curve, time) is saved next to the
# weights as sft_summary.json.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-src/vlthinker/assets/tiny_vlm}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

python -m vlthinker.models.tiny --out "$WORK/untrained" --seed 0
vlthinker sft \
  --model "$WORK/untrained" \
  --data synthetic --synthetic-size "${SFT_ITEMS:-38400}" --synthetic-seed 1 \
  --epochs 1 --batch-size 32 --learning-rate 1e-3 --logging-steps 20 \
  --out "$WORK/sft"
rm -rf "$OUT"
mkdir -p "$OUT"
cp "$WORK"/sft/*.json "$WORK"/sft/*.safetensors "$WORK"/sft/*.jinja "$OUT"/
cp "$WORK"/untrained/tiny_vlm_spec.json "$OUT"/
du -sh "$OUT"
