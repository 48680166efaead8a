"""CHAIR of a built tiny LLaVA's own greedy captions against the ShapesWorld scene graphs."""

from __future__ import annotations

import pytest
import torch

from vlforge.common.errors import VLForgeError
from vlforge.common.lm.prompts import prompt_text
from vlforge.common.metrics.chair import chair, scene_objects
from vlforge.common.store import CaptionStore
from vlforge.vlm.mllm import build_llava
from vlforge.vlm.mllm.caption_hallucination import mllm_caption_chair


def test_chair_of_generated_captions(towers, shapes_store):
    model, processor = build_llava(towers["clip"], "preset:llama_tiny")
    result = mllm_caption_chair(model, processor, shapes_store, "test", limit=3, batch_size=2, max_new_tokens=6)
    with CaptionStore(shapes_store) as store:
        records = list(store.iter_records("test"))[:3]
        image = store.load_image(records[1])
    assert [c["id"] for c in result["captions"]] == [r.image_id for r in records]
    captions = [c["caption"] for c in result["captions"]]
    assert result["chair"] == chair(captions, [scene_objects(r.meta["scene_graph"]) for r in records]).summary()
    inputs = processor(text=[prompt_text(processor, "Describe the image in detail.")], images=[image],
                       return_tensors="pt")
    with torch.no_grad():
        output = model.generate(**inputs, do_sample=False, max_new_tokens=6)
    alone = processor.tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    assert captions[1] == alone
    with pytest.raises(VLForgeError, match="split 'nothing' has no records"):
        mllm_caption_chair(model, processor, shapes_store, "nothing")
