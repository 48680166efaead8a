"""generate_captions on the tiny LLaVA / Qwen2-VL / BLIP presets: batching changes nothing, prompts and
special tokens are stripped, decoding parameters reach generate, and an out-of-memory batch is split and
retried."""

import pytest
import torch
from torch import nn

from vlforge.captioner.captioner import Captioner
from vlforge.captioner.collate import chat_prompt
from vlforge.captioner.generation import generate_captions
from vlforge.common.errors import VLForgeError
from vlforge.common.presets import build_preset

GREEDY = {"max_new_tokens": 6, "do_sample": False}
PROMPTS = [
    "Describe the image.",
    "Write a short caption for this picture please.",
    "Describe the image.",
    "Hi.",
]


def plain_hf_caption(model, processor, image, instruction, decoding, prompt_offset=0):
    """The reference: one image, no padding, plain transformers generate, new tokens decoded."""
    inputs = processor(text=[chat_prompt(processor, instruction)], images=[image], return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, **decoding)
    new = out[0, inputs["input_ids"].shape[1] - prompt_offset :]
    return " ".join(processor.tokenizer.decode(new, skip_special_tokens=True).split())


@pytest.mark.parametrize("preset, prompt_offset", [("llava_tiny", 0), ("qwen2_vl_tiny", 0), ("blip_tiny", 1)])
def test_batched_equals_plain_generate_one_image_at_a_time(preset, prompt_offset, images):
    model, processor = build_preset(preset)
    model.eval()
    batched = generate_captions(model, processor, images, PROMPTS, GREEDY, batch_size=4)
    reference = [
        plain_hf_caption(model, processor, img, p, GREEDY, prompt_offset)
        for img, p in zip(images, PROMPTS, strict=True)
    ]
    assert batched == reference
    assert any(batched)


def test_accepts_a_captioner_and_one_prompt_and_restores_model_state(llava, images):
    model, processor = llava
    model.train()
    processor.tokenizer.padding_side = "right"
    captioner = Captioner.from_parts(model, processor)
    three_tokens = {"max_new_tokens": 3, "do_sample": False}
    captions = generate_captions(captioner, None, images, "Describe the image.", three_tokens, batch_size=3)
    assert model.training and processor.tokenizer.padding_side == "right"
    model.eval()
    three = plain_hf_caption(model, processor, images[0], "Describe the image.", three_tokens)
    six = plain_hf_caption(model, processor, images[0], "Describe the image.", GREEDY)
    assert len(captions) == 4 and captions[0] == three != six


def test_special_tokens_are_stripped_and_may_leave_an_empty_caption(llava, images):
    model, processor = llava
    image_token = processor.tokenizer.convert_tokens_to_ids("<image>")
    only_specials = {"max_new_tokens": 4, "do_sample": False, "sequence_bias": {(image_token,): 100.0}}
    assert generate_captions(model, processor, images[:2], "Describe the image.", only_specials) == ["", ""]


class OutOfMemoryAbove(nn.Module):
    """A wrapper whose generate fails like CUDA does for batches above ``max_rows`` (the retry logic is under
    test)."""

    def __init__(
        self, inner: nn.Module, max_rows: int, message: str = "CUDA out of memory. Tried to allocate 2 GiB"
    ):
        super().__init__()
        self.inner, self.config, self.max_rows, self.message = inner, inner.config, max_rows, message
        self.attempts: list[int] = []

    def generate(self, **inputs):
        rows = inputs["input_ids"].shape[0]
        self.attempts.append(rows)
        if rows > self.max_rows:
            raise RuntimeError(self.message)
        return self.inner.generate(**inputs)


def test_out_of_memory_batch_is_split_in_half_and_retried(llava, images):
    model, processor = llava
    five = images + images[:1]
    expected = generate_captions(model, processor, five, "Describe the image.", GREEDY, batch_size=1)
    wrapper = OutOfMemoryAbove(model, max_rows=2)
    assert (
        generate_captions(wrapper, processor, five, "Describe the image.", GREEDY, batch_size=8) == expected
    )
    assert wrapper.attempts == [5, 2, 3, 1, 2]


def test_out_of_memory_on_a_single_image_and_other_errors_are_raised(llava, images):
    model, processor = llava
    always = OutOfMemoryAbove(model, max_rows=0)
    with pytest.raises(RuntimeError, match="out of memory"):
        generate_captions(always, processor, images[:2], "Describe the image.", GREEDY, batch_size=2)
    assert always.attempts == [2, 1]
    other = OutOfMemoryAbove(model, max_rows=0, message="expected all tensors to be on the same device")
    with pytest.raises(RuntimeError, match="same device"):
        generate_captions(other, processor, images[:2], "Describe the image.", GREEDY, batch_size=2)
    assert other.attempts == [2]


def test_bad_arguments_are_one_line_errors(llava, images):
    model, processor = llava
    with pytest.raises(VLForgeError, match="4 images but 2 prompts"):
        generate_captions(model, processor, images, ["a", "b"], GREEDY)
    with pytest.raises(VLForgeError, match="batch_size"):
        generate_captions(model, processor, images, "a", GREEDY, batch_size=0)
    with pytest.raises(VLForgeError, match="processor"):
        generate_captions(model, None, images, "a", GREEDY)
