#!/usr/bin/env bash
# The GPU check in one command (see bench/gpu_check.py): bash bench/gpu_check.sh [--dry-run] [--out DIR] [--parts ...]
#
# The GPU machine reaches no package registry. It must already have Python with a CUDA build of torch; everything
# else comes from wheels carried along in bench/wheels (or $VLFORGE_WHEELS), downloaded beforehand on a machine
# with registry access:
#   python -m pip download -d bench/wheels -c constraints.txt -r bench/gpu_requirements.txt --no-deps
# (41 MB; bench/wheels is ignored by git: carry it with the working tree, e.g. the device tool's carry:
# ["bench/wheels"]; deepspeed comes as an sdist, built without isolation against the installed torch).
# vlforge itself runs from the tree through PYTHONPATH, nothing is installed for it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
WHEELS=${VLFORGE_WHEELS:-bench/wheels}
if ! "$PYTHON" -c "import torch" 2>/dev/null; then
    echo "gpu_check: $PYTHON has no torch; install a CUDA build of torch first" >&2
    exit 2
fi
if [ -d "$WHEELS" ]; then
    "$PYTHON" -m pip install --quiet --no-index --no-build-isolation --find-links "$WHEELS" -r bench/gpu_requirements.txt
fi
PYTHONPATH=$(for p in common vlm captioner critic rewriter; do printf "%s/packages/%s/src:" "$PWD" "$p"; done)
export PYTHONPATH="$PYTHONPATH${PYTHONPATH_EXTRA:-}"
export TOKENIZERS_PARALLELISM=false
exec "$PYTHON" bench/gpu_check.py "$@"
