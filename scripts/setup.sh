#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv: PyTorch first, so that a CPU-only
# machine gets a CPU build instead of several GB of CUDA packages, then CardiacAI and its test tools.
# Idempotent: a second run only checks that everything is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV="${CARDIACAI_VENV:-.venv}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip >/dev/null

if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  echo "[setup] installing PyTorch (CPU build unless CUDA wheels are already available locally)"
  # torch==2.13.0 is the CPU build this project's machines carry; elsewhere take PyTorch's CPU index.
  "${PIP[@]}" install "torch==2.13.0" 2>/dev/null \
    || "${PIP[@]}" install torch --index-url https://download.pytorch.org/whl/cpu
fi

marker="$VENV/.cardiacai-installed"
if [ ! -f "$marker" ] || [ pyproject.toml -nt "$marker" ]; then
  echo "[setup] installing CardiacAI and its dependencies"
  "${PIP[@]}" install -e ".[test]"
  touch "$marker"
fi
