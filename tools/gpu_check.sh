#!/usr/bin/env bash
# GPU readiness of WISH: the CUDA tests (forward, extraction fp32/bf16, training iterations) and the real-scale GPU
# figures (1080p extraction frames/s, peak GPU memory, training iterations/s). Fails at once without CUDA.
#   tools/gpu_check.sh [OUT.json]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: no CUDA GPU visible to torch ($("$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)')); nothing was run." >&2
    exit 2
fi
echo "== CUDA tests"
"$PY" -m pytest -q tests/test_gpu_wish.py -rs
echo "== GPU figures"
"$PY" -m wish_d2.benchmark.gpu ${1:+--json "$1"}
