#!/usr/bin/env bash
# Issue 14's small study, in the paper's cheaper form (the regulariser added only at the end of training,
# as a fine-tune): every model starts from ddpm-c90-s0.05 (DDPM trained on the 90%-noised set) and trains
# 500 more steps on the same corrupted set, without the regulariser (the control: more steps alone),
# with the equivariant one (adversarial, lambda 0.3 and 1.0), and with the invariant one (the ablation).
# Then grids/robustadv-finetune-study.yaml compares their samples with clean test images.
# The same on clean data (does the regulariser cost quality when nothing is corrupted? the paper's claim 3,
# and its invariance control): bash scripts/robustadv_study/finetune.sh runs/robustadv-finetune-clean 1 ddpm 0 0
# Usage: bash scripts/robustadv_study/finetune.sh [OUT=runs/robustadv-finetune] [JOBS=2] [BASE=ddpm-c90-s0.05]
#        [PERCENT=90] [SIGMA=0.05]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/robustadv-finetune}
jobs=${2:-2}
common=(--init-from "${3:-ddpm-c90-s0.05}" --percent "${4:-90}" --sigma "${5:-0.05}" --steps 500 --warmup-steps 50)
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
train() { local name=$1; shift; echo "$name $(date +%T)"; .venv/bin/bench --quiet train-denoiser "$out/$name" "${common[@]}" "$@" > "$out/$name.log" 2>&1; echo "$name done $(date +%T)"; }
mkdir -p "$out"
train ft-equi --regulariser equivariant &
[ "$jobs" -gt 1 ] || wait
train ft-inv --regulariser invariant
wait
train ft-equi-l1 --regulariser equivariant --weight 1.0 &
[ "$jobs" -gt 1 ] || wait
train ft-none
wait
