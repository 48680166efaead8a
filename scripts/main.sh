#!/usr/bin/env bash
# The README's main job on the embedded default: set up (once), build a ShapesWorld caption store, verify it, and
# write its statistics and an exported preview into runs/main/. Later issues grow this into the full experiment.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
RUN=${RUN:-runs/main}
NUM_IMAGES=${NUM_IMAGES:-20000}
SEED=${SEED:-0}
STORE=$RUN/shapes.lmdb
BIN=.venv/bin
mkdir -p "$RUN"
stage() { printf '[main] %-8s ' "$1"; }
t0=$SECONDS
stage shapes
if [ -f "$RUN/.shapes-done" ] && [ "$(cat "$RUN/.shapes-done")" = "$NUM_IMAGES/$SEED" ]; then
  echo "exists, skipped"
else
  rm -rf "$STORE"
  s=$SECONDS; "$BIN/vlforge-store" shapes "$STORE" --num-images "$NUM_IMAGES" --seed "$SEED" >/dev/null
  echo "$NUM_IMAGES/$SEED" > "$RUN/.shapes-done"; echo "$NUM_IMAGES images in $((SECONDS - s)) s"
fi
stage verify; s=$SECONDS; "$BIN/vlforge-store" verify "$STORE" > "$RUN/verify.txt"; echo "ok in $((SECONDS - s)) s"
stage stats;  "$BIN/vlforge-store" stats "$STORE" --json > "$RUN/stats.json"; echo "$RUN/stats.json"
stage export; "$BIN/vlforge-store" export "$STORE" --format jsonl --out "$RUN/captions.jsonl"
head -n 3 "$RUN/captions.jsonl" > "$RUN/preview.jsonl"; echo "$RUN/captions.jsonl (preview: $RUN/preview.jsonl)"
echo "[main] done in $((SECONDS - t0)) s"
"$BIN/vlforge-store" stats "$STORE"
