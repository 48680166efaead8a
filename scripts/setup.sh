#!/usr/bin/env bash
# Creates .venv (Python 3.11) and installs the five vlforge packages editable with every dependency pinned by
# constraints.txt. Idempotent: a stamp holding the hash of the install inputs makes a repeated call a no-op.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
# The caption browser's test renders its page in headless Chromium (Debian's package).
if ! command -v chromium >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "[setup] installing chromium (the caption browser's test renders in it)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ||
    echo "[setup] warning: could not install chromium; the browser test will fail until it is installed" >&2
fi
stamp_inputs="constraints.txt requirements-dev.txt packages/*/pyproject.toml"
# shellcheck disable=SC2086
want=$(cat $stamp_inputs | sha256sum | cut -d' ' -f1)
if [ -f .venv/.vlforge-installed ] && [ "$(cat .venv/.vlforge-installed)" = "$want" ]; then
  exit 0
fi
echo "[setup] creating .venv with $($PY --version) and installing vlforge (a few minutes on a fresh machine)"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
"${PIP[@]}" install -c constraints.txt "torch==2.14.1" "torchvision==0.29.1"
"${PIP[@]}" install -c constraints.txt -r requirements-dev.txt \
  -e "packages/common[deepspeed,parquet]" -e packages/vlm -e "packages/captioner[qlora]" -e packages/critic \
  -e packages/rewriter  # extras included: the tests cover the DeepSpeed presets and checkpoint merging
echo "$want" > .venv/.vlforge-installed
echo "[setup] done"
