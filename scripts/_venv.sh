# Sourced by scripts/serve and scripts/test: make .venv ready to run the emulator, on a fresh machine or again.
#
#   ensure_venv        the emulator itself   (pip install -e .)
#   ensure_venv test   plus the test extra   (pip install -e ".[test]")
#
# The venv sees system site-packages so a torch the user already has (CUDA, ROCm, CPU) is reused. Only when
# `import torch` fails is torch installed: EMULATOR_TORCH_SPEC (default torch==2.13.0) from PyPI plus the PyTorch
# CPU index (EMULATOR_TORCH_INDEX_URL; empty to skip), whose `+cpu` builds win over PyPI's CUDA ones.
# A stamp keyed on pyproject.toml's hash makes a re-run skip pip entirely.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
PY="$VENV/bin/python"

_base_python() {
  local candidate
  for candidate in ${EMULATOR_PYTHON:-} python3 python; do
    if command -v "$candidate" >/dev/null 2>&1 \
      && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
      echo "$candidate"
      return
    fi
  done
  echo "error: the emulator needs Python 3.10 or newer; set EMULATOR_PYTHON to one" >&2
  return 1
}

_stamp_key() {
  "$PY" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' \
    "$ROOT/pyproject.toml"
}

_install_torch() {
  local spec=${EMULATOR_TORCH_SPEC:-torch==2.13.0}
  local index=${EMULATOR_TORCH_INDEX_URL-https://download.pytorch.org/whl/cpu}
  local extra=() note=""
  # Ask the CPU index only when it answers: behind a PyPI-only mirror it would just cost minutes of retries.
  if [ -n "$index" ] && "$PY" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)' \
      "$index" >/dev/null 2>&1; then
    extra=(--extra-index-url "$index")
    note=" (PyPI plus $index)"
  fi
  echo "torch is not importable: installing $spec$note" >&2
  # ${a[@]+...}: an empty array under `set -u` is an error in the bash 3.2 that macOS ships.
  "$PY" -m pip install --disable-pip-version-check ${extra[@]+"${extra[@]}"} "$spec"
}

ensure_venv() {
  local extra=${1:-}
  local stamp="$VENV/.installed${extra:+-$extra}"
  if [ -x "$PY" ] && "$PY" -c '' 2>/dev/null; then
    local key
    key=$(_stamp_key)
    if [ "$(cat "$stamp" 2>/dev/null)" = "$key" ]; then return 0; fi
    # The test install includes everything the plain one does.
    if [ -z "$extra" ] && [ "$(cat "$VENV/.installed-test" 2>/dev/null)" = "$key" ]; then return 0; fi
  else
    local base
    base=$(_base_python)
    echo "creating $VENV (with system site-packages, so an installed torch is reused)" >&2
    rm -rf "$VENV"
    "$base" -m venv --system-site-packages "$VENV" || {
      echo "error: '$base -m venv' failed (on Debian/Ubuntu: apt install python3-venv)" >&2
      return 1
    }
  fi
  "$PY" -c 'import torch' >/dev/null 2>&1 || _install_torch
  "$PY" -m pip install --disable-pip-version-check -e "$ROOT${extra:+[$extra]}"
  _stamp_key >"$stamp"
}
