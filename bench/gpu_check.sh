#!/usr/bin/env bash
# The torch backend's GPU check, in one call on a lent GPU machine (<= 8 minutes).
# Here first:  .venv/bin/python bench/gpu_prepare.py        (writes bench/gpu_carry/, < 64 MiB)
# There:       bash bench/gpu_check.sh [CARRY_DIR]           (device tool: carry ["bench/gpu_carry"])
# Writes gpu_check.json, gpu_check.md and the log to $OUT (bench/results/gpu when unset).
set -uo pipefail
CARRY=${1:-bench/gpu_carry}
OUT=${OUT:-bench/results/gpu}
mkdir -p "$OUT"
SITE=$(mktemp -d /tmp/ocrfleet-site.XXXXXX)
trap 'rm -rf "$SITE"' EXIT
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
  # the project wheel alone: numpy, opencv, onnx, pyyaml, tqdm and torch are on the machine
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "$CARRY"/ocrfleet-*.whl || exit 2
  PYTHONPATH="$SITE" PYTHONUNBUFFERED=1 timeout 450 python3 bench/gpu_check.py --carry "$CARRY" --out "$OUT"
  echo "gpu_check exit status $?"
  date -u
} 2>&1 | tee "$OUT/gpu_check.log"
