#!/usr/bin/env bash
# The README's test command: set up (once) and run the test suite, small learning-outcome tests (slow) included;
# the full-size outcome runs are marked `outcome` and run with `bash scripts/test.sh -m outcome`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
