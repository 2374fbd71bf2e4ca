#!/usr/bin/env bash
# On a machine with a GPU: set up, then measure `bench perf` (float32, bfloat16) and the default grid
# on it, and write BENCHMARKS.md's GPU section (the raw report goes to ${OUT:-.}/perf-gpu.json).
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1
bash scripts/setup.sh
.venv/bin/python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'error: no CUDA device; run this on a GPU machine')"
.venv/bin/python scripts/device/perf_gpu.py --device cuda --save-json "${OUT:-.}/perf-gpu.json"
