"""vlforge.common.lm.collate on multi-turn conversations (LLaVA instruction data) with a real tiny LLaVA: labels on
exactly the assistant turns the chat template writes, batches mixing image and text-only examples, and max_length
cutting text (counted), never image tokens."""

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from vlforge.common.errors import VLForgeError
from vlforge.common.lm.collate import SFTCollator
from vlforge.common.lm.logprobs import IGNORE_INDEX
from vlforge.common.lm.prompts import render_turns, user_turn
from vlforge.common.presets import build_preset

TURNS = [["What colour is the circle?", "red"], ["How many shapes are there?", "2"], ["Where is it?", "left"]]


@pytest.fixture(scope="module")
def llava():
    return build_preset("llava_tiny")


@pytest.fixture
def image():
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))


def _conversation(turns, image):
    messages = []
    for index, (question, answer) in enumerate(turns):
        messages += user_turn(question, image and index == 0)
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return messages


def test_segments_concatenate_to_the_template_rendering(llava):
    processor = llava[1]
    segments, split = render_turns(processor, [tuple(t) for t in TURNS])
    assert split
    assert "".join(s.text for s in segments) == processor.apply_chat_template(_conversation(TURNS, True),
                                                                              tokenize=False)
    assert [s.response for s in segments] == [False, True] * 3
    assert [s.text for s in segments if s.response] == [" red</s>\n", " 2</s>\n", " left</s>\n"]


def test_labels_are_the_assistant_turns_and_the_sequence_is_the_whole_conversation(llava, image):
    processor = llava[1]
    tokenizer = processor.tokenizer
    batch = SFTCollator(processor)([{"key": "c", "image": image, "turns": TURNS}])
    ids, labels = batch["input_ids"][0], batch["labels"][0]
    assert tokenizer.decode(ids[labels != IGNORE_INDEX]) == " red</s>\n 2</s>\n left</s>\n"
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    assert int((ids == image_id).sum()) == 64  # 64 px / 8 px patches, CLS dropped
    whole = processor.apply_chat_template(_conversation(TURNS, True), tokenize=False)
    assert tokenizer.decode(ids[ids != image_id]) == tokenizer.decode(
        tokenizer(whole.replace("<image>", ""))["input_ids"])


def test_a_batch_mixing_image_and_text_only_conversations_matches_each_alone(llava, image):
    model, processor = llava
    model.eval()
    examples = [{"key": "text", "turns": [["Say hello.", "hello"]]}, {"key": "img", "image": image, "turns": TURNS}]
    collator = SFTCollator(processor)
    batch = collator(examples)
    assert batch["pixel_values"].shape[0] == 1
    with torch.no_grad():
        together = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        for row, example in enumerate(examples):
            alone = collator([example])
            logits = model(**{k: v for k, v in alone.items() if k != "labels"}).logits[0]
            n = alone["input_ids"].shape[1]
            torch.testing.assert_close(together[row, :n], logits, atol=1e-4, rtol=1e-4)


def test_max_length_cuts_later_turns_and_never_image_tokens(llava, image, caplog):
    processor = llava[1]
    image_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    full = SFTCollator(processor)([{"key": "c", "image": image, "turns": TURNS}])["input_ids"].shape[1]
    collator = SFTCollator(processor, max_length=full - 3)
    with caplog.at_level(logging.WARNING):
        batch = collator([{"key": "cut", "image": image, "turns": TURNS}])
    assert batch["input_ids"].shape[1] == full - 3
    assert collator.counts["truncated"] == 1 and "'cut'" in caplog.text
    tiny = SFTCollator(processor, max_length=10)  # shorter than the image tokens: the prompt stays whole
    batch = tiny([{"key": "lost", "image": image, "turns": TURNS}])
    assert int((batch["input_ids"][0] == image_id).sum()) == 64
    assert tiny.counts["lost"] == 1 and int((batch["labels"] != IGNORE_INDEX).sum()) == 0


def test_plain_multi_turn_and_mixed_kinds(llava, image):
    processor = llava[1]
    segments, split = render_turns(processor, [("", "A red circle."), ("More?", "No.")], style="plain")
    assert split and segments[0].text == "<image>" and segments[1].text == " A red circle.</s>"
    with pytest.raises(VLForgeError, match="mixes conversations"):
        SFTCollator(processor)([{"key": "a", "turns": TURNS}, {"key": "b", "instruction": "x", "response": "y"}])
