"""CHAIR of an MLLM's own captions (Rohrbach et al. 2018; ``vlforge.common.metrics.chair``): the model captions
each image of a ShapesWorld split greedily (``generate_answers``, the prompt alone in the user turn after the
image) and every shape it names is checked against the image's scene graph."""

from __future__ import annotations

import os
from collections.abc import Callable
from itertools import islice
from typing import Any

import torch

from vlforge.common.errors import VLForgeError
from vlforge.common.metrics.chair import chair, scene_objects
from vlforge.common.store import CaptionStore
from vlforge.vlm.mllm.evaluate import generate_answers

CAPTION_PROMPT = "Describe the image in detail."


def mllm_caption_chair(model: torch.nn.Module, processor: Any, store: str | os.PathLike, split: str,
                       limit: int | None = None, prompt: str = CAPTION_PROMPT, batch_size: int = 8,
                       max_new_tokens: int = 64,
                       progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """``{"chair": {chair_i, chair_s, num_mentions, num_hallucinated_mentions}, "captions": [{"id", "caption",
    "hallucinations"}]}`` over the first ``limit`` records of ``split`` (all when None)."""
    with CaptionStore(store) as opened:
        records = list(islice(opened.iter_records(split), limit))
        missing = next((r.image_id for r in records if "scene_graph" not in r.meta), None)
        if missing is not None:
            raise VLForgeError(f"store {os.fspath(store)}: record {missing} has no scene graph for CHAIR")
        questions = [{"id": r.image_id, "image": opened.load_image(r), "question": prompt} for r in records]
    if not questions:
        raise VLForgeError(f"store {os.fspath(store)}: split {split!r} has no records")
    captions = generate_answers(model, processor, questions, batch_size, max_new_tokens, answer_prompt=None,
                                progress=progress)
    result = chair(captions, [scene_objects(r.meta["scene_graph"]) for r in records])
    return {"chair": result.summary(),
            "captions": [{"id": r.image_id, "caption": c, "hallucinations": h}
                         for r, c, h in zip(records, captions, result.hallucinations, strict=True)]}
