#!/usr/bin/env bash
# The README's two images, from a 300-image ShapesWorld store (seed 0): the caption browser's screenshot
# (docs/img/caption_browser.png, headless Chromium) and the caption lengths per source of the pool split
# (docs/img/caption_lengths.png, from docs/img/caption_lengths.json = the analysis it plots).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$(dirname "$PY")/vlforge-store" shapes "$work/store" --num-images 300 --seed 0 --workers 1
"$(dirname "$PY")/vlforge-store" browse "$work/store" --out "$work/browse" --split val --page-size 3 \
  --sources gt alt_text
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --virtual-time-budget=5000 \
  --window-size=900,640 --screenshot=docs/img/caption_browser.png "file://$work/browse/index.html"
"$(dirname "$PY")/vlforge-captioner" analyze --store "$work/store" --split pool --out "$work/analysis"
cp "$work/analysis/lengths.png" docs/img/caption_lengths.png
cp "$work/analysis/analysis.json" docs/img/caption_lengths.json
