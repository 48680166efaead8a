#!/usr/bin/env bash
# The README's test command: set up (once) and run the test suite, small learning-outcome tests (slow) included;
# the full-size outcome runs are marked `outcome` and run with `bash scripts/test.sh -m outcome`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Two workers on the two cores, one torch thread each (OMP_NUM_THREADS reaches every subprocess the tests start);
# slow tests are handed out first, one at a time (conftest.py). `-n 0` runs in one process.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
exec .venv/bin/python -m pytest -n "${VLFORGE_TEST_WORKERS:-2}" --dist load --maxschedchunk 1 "$@"
