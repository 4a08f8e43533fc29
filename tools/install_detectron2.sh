#!/usr/bin/env bash
# Install Detectron2 into the current Python environment, the one way that works without GitHub.
#
# 1. If a Detectron2 is already importable (e.g. the official compiled build), keep it.
# 2. Otherwise build the PyPI sdist `pb1-detectron2==0.6` (a re-upload of Detectron2 v0.6 that lacks
#    detectron2/layers/csrc) as pure Python: `build_py` copies the package, `bdist_wheel --skip-build`
#    packs it without compiling the extension, and pip installs that wheel with its dependencies.
#    wish_d2/compat.py supplies what the missing extension would have provided.
#
# With GitHub access you may prefer the compiled ops:
#   pip install --no-build-isolation 'git+https://github.com/facebookresearch/detectron2.git'
set -euo pipefail
PY=${PYTHON:-python}
PY=$(command -v "$PY" || true)
[ -n "$PY" ] || { echo "install_detectron2.sh: Python interpreter '${PYTHON:-python}' not found" >&2; exit 1; }
PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")  # absolute: the build below runs in another folder
if "$PY" -c "import detectron2" 2>/dev/null; then
  echo "detectron2 already installed: $("$PY" -c 'import detectron2, os; print(os.path.dirname(detectron2.__file__))')"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PY" -m pip download -q --no-deps --no-build-isolation --no-binary :all: -d "$work" pb1-detectron2==0.6
tar -xzf "$work"/pb1-detectron2-0.6.tar.gz -C "$work"
(
  cd "$work/pb1-detectron2-0.6"
  "$PY" setup.py -q build_py >/dev/null 2>&1
  "$PY" setup.py -q bdist_wheel --skip-build -d "$work/dist" >/dev/null 2>&1
)
"$PY" -m pip install -q "$work"/dist/pb1_detectron2-0.6-*.whl
echo "installed pure-Python detectron2 0.6 (no compiled ops; see wish_d2/compat.py)"
