#!/usr/bin/env bash
# The README's main job: set up (once), then the MLLM-augmented experiment on the embedded ShapesWorld dataset
# (experiments/shapes/mllm_augmented.yaml): ShapesWorld -> 3 tiny captioners fine-tuned -> the pool captioned with
# text shearing -> CLIP on alt-text only vs alt-text + 3 synthetic captions (same steps) -> test retrieval / ARO ->
# runs/mllm_augmented/report.md. Complete stages are skipped, so a second run only rewrites the report.
#   SEED=1 bash scripts/main.sh          another seed (the report aggregates every seed present)
#   EXTRA="experiments/shapes/ablation_captioners.yaml" bash scripts/main.sh    an ablation delta on top
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
SEED=${SEED:-0}
# shellcheck disable=SC2086
.venv/bin/python experiments/mllm_augmented.py experiments/shapes/mllm_augmented.yaml ${EXTRA:-} --seed "$SEED"
