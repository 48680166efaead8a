#!/usr/bin/env bash
# The README's test command: set up (once) and run the whole test suite, slow learning-outcome tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
