#!/usr/bin/env bash
# Create .venv with l2l installed (editable) and the extras named in $1 (e.g. "test").
# Uses the torch the calling python already has, if any; otherwise installs torch 2.13.0
# (on machines whose pip is pointed at a local CPU wheel, that one; never a multi-GB CUDA pull
# when torch is already present).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"
venv="${VENV:-.venv}"
if [ ! -x "$venv/bin/python" ]; then
  if "$python" -c "import torch" 2>/dev/null; then
    echo "setup: using the torch of $python ($("$python" -c 'import torch; print(torch.__version__)'))"
    "$python" -m venv --system-site-packages "$venv"
  else
    "$python" -m venv "$venv"
  fi
fi
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  echo "setup: installing torch 2.13.0"
  "${pip[@]}" "torch==2.13.0"
fi
spec="."
[ -n "$extras" ] && spec=".[$extras]"
stamp="$venv/.l2l-installed-${extras:-base}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing l2l${extras:+ with extras $extras}"
  "${pip[@]}" -e "$spec"
  touch "$stamp"
fi
