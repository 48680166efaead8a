"""vlforge.common.lm.collate / prompts on real tiny presets: text-only and image prompts, chat and plain styles,
k responses per prompt, and lost / truncated responses counted and reported (not silently zeroed)."""

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from vlforge.common.errors import VLForgeError
from vlforge.common.lm.collate import SFTCollator
from vlforge.common.lm.logprobs import IGNORE_INDEX
from vlforge.common.lm.prompts import image_placeholder, render
from vlforge.common.presets import build_preset


@pytest.fixture(scope="module")
def tokenizer():
    return build_preset("llama_tiny")[1]


@pytest.fixture(scope="module")
def llava_processor():
    return build_preset("llava_tiny")[1]


@pytest.fixture
def image():
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))


def _response_tokens(batch, row, tokenizer):
    return tokenizer.decode(batch["input_ids"][row][batch["labels"][row] != IGNORE_INDEX])


def test_text_only_labels_are_exactly_the_rendered_response(tokenizer):
    collator = SFTCollator(tokenizer)
    batch = collator([{"instruction": "a red circle", "response": "A red circle."},
                      {"instruction": "two", "response": "Two blue squares."}])
    for row, response in enumerate(["A red circle.", "Two blue squares."]):
        expected = render(tokenizer, ["a red circle", "two"][row], response, image=False).response
        ids = tokenizer(expected, add_special_tokens=False)["input_ids"]
        labelled = batch["labels"][row][batch["labels"][row] != IGNORE_INDEX].tolist()
        assert labelled == ids
    assert collator.counts["sequences"] == 2 and collator.counts["lost"] == 0


def test_k_responses_stack_response_j_of_every_example(tokenizer):
    examples = [{"key": "a", "instruction": "x", "responses": ["first a", "second a", "third a"]},
                {"key": "b", "instruction": "y", "responses": ["first b", "second b", "third b"]}]
    batch = SFTCollator(tokenizer)(examples)
    assert batch["input_ids"].shape[0] == 6
    order = [_response_tokens(batch, row, tokenizer) for row in range(6)]
    words = [o.replace("</s>", "").split()[:2] for o in order]
    assert words == [["first", "a"], ["first", "b"], ["second", "a"], ["second", "b"], ["third", "a"], ["third", "b"]]
    with pytest.raises(VLForgeError, match="same number of responses"):
        SFTCollator(tokenizer)([examples[0], {"instruction": "z", "response": "one"}])


def test_lost_and_truncated_responses_are_counted_and_reported(tokenizer, caplog):
    collator = SFTCollator(tokenizer, max_length=30)
    long_prompt = {"key": "long", "instruction": "red " * 40, "response": "A red circle."}
    cut = {"key": "cut", "instruction": "x", "response": "red blue green " * 10}
    fine = {"key": "fine", "instruction": "x", "response": "ok"}
    with caplog.at_level(logging.WARNING):
        batch = collator([long_prompt, cut, fine])
    assert collator.counts["lost"] == 1 and collator.counts["truncated"] == 1
    assert "'long'" in caplog.text and "'cut'" in caplog.text and "'fine'" not in caplog.text
    labelled = (batch["labels"] != IGNORE_INDEX).sum(dim=1).tolist()
    assert labelled[0] == 0 and labelled[1] > 0 and labelled[2] > 0


def test_a_template_that_cannot_be_split_is_counted(tokenizer):
    odd = build_preset("llama_tiny")[1]
    odd.chat_template = "{% for m in messages %}{{ m['role'] }}{% endfor %}{% if add_generation_prompt %}>{% endif %}"
    collator = SFTCollator(odd)
    batch = collator([{"key": "k", "instruction": "x", "response": "A red circle."}])
    assert collator.counts["template_fallback"] == 1
    assert _response_tokens(batch, 0, odd).replace(" ", "").startswith("Aredcircle.")


def test_plain_style_is_image_then_response_without_template(llava_processor, image):
    assert image_placeholder(llava_processor) == "<image>"
    collator = SFTCollator(llava_processor, prompt_style="plain")
    batch = collator([{"image": image, "instruction": "", "response": "A red circle."}])
    image_id = llava_processor.tokenizer.convert_tokens_to_ids("<image>")
    prompt = batch["input_ids"][0][batch["labels"][0] == IGNORE_INDEX]
    assert (prompt == image_id).sum() > 0
    assert "USER" not in llava_processor.tokenizer.decode(batch["input_ids"][0])
    assert "pixel_values" in batch
    chat = SFTCollator(llava_processor)([{"image": image, "instruction": "", "response": "A red circle."}])
    assert "USER" in llava_processor.tokenizer.decode(chat["input_ids"][0])


def test_an_image_for_a_text_only_model_is_an_error(tokenizer, image):
    with pytest.raises(VLForgeError, match="text-only"):
        SFTCollator(tokenizer)([{"key": "k", "image": image, "instruction": "x", "response": "y"}])
    with pytest.raises(VLForgeError, match="prompt style 'chatty'"):
        SFTCollator(tokenizer, prompt_style="chatty")([{"instruction": "x", "response": "y"}])
    assert torch.is_tensor(SFTCollator(tokenizer)([{"instruction": "x", "response": "y"}])["labels"])
