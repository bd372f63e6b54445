#!/bin/sh
# Regenerate the hashed lock files from the *.in files. Needs uv (pip install uv) and PyPI.
# Afterwards run `python -m repro.provenance.pins sync-locks` to refresh manifest.lock.
set -eu
cd "$(dirname "$0")"
UV="${UV:-uv}"
CMD="sh requirements/compile.sh"
common="--generate-hashes --no-config --index-url https://pypi.org/simple"
# Ubuntu 24.04 (the CUDA base images) ships Python 3.12 and glibc 2.39.
gpu="--python-version 3.12 --python-platform x86_64-manylinux_2_39"

# CPU: the +cpu wheel comes from PyTorch's CPU index. Where that index is unreachable, set
# TORCH_CPU_INDEX= (empty) and WHEELS_DIR to a folder holding the same wheel.
TORCH_CPU_INDEX="${TORCH_CPU_INDEX-https://download.pytorch.org/whl/cpu}"
cpu_src="--index-strategy unsafe-best-match"
[ -n "$TORCH_CPU_INDEX" ] && cpu_src="$cpu_src --extra-index-url $TORCH_CPU_INDEX"
[ -n "${WHEELS_DIR:-}" ] && cpu_src="$cpu_src --find-links $WHEELS_DIR"
"$UV" pip compile --custom-compile-command "$CMD" cpu.in $common $cpu_src \
  --python-version 3.11 --python-platform x86_64-manylinux_2_28 --only-binary :all: -o cpu.txt

# Train: DeepSpeed ships only an sdist whose setup.py imports torch, so it is locked apart
# and built with --no-build-isolation after everything else is installed.
"$UV" pip compile --custom-compile-command "$CMD" train.in $common $gpu --no-binary deepspeed --no-emit-package deepspeed -o train.txt
"$UV" pip compile --custom-compile-command "$CMD" train.in $common $gpu --no-binary deepspeed -o train-full.tmp
printf '%s\n' "# DeepSpeed alone; its dependencies are in train.txt. $CMD" > train-deepspeed.txt
awk '/^deepspeed==/{p=1} p&&/^[a-z]/&&!/^deepspeed==/{p=0} p&&!/^ *#/' train-full.tmp >> train-deepspeed.txt
rm -f train-full.tmp

"$UV" pip compile --custom-compile-command "$CMD" eval.in $common $gpu --only-binary :all: -o eval.txt
