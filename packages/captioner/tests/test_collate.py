"""The caption collator: chat-template prompt, loss on response tokens only, right padding, preference rows."""

import torch

from vlforge.captioner.collate import CaptionCollator, chat_prompt, response_text
from vlforge.captioner.logprobs import IGNORE_INDEX


def test_response_segment_follows_the_chat_template(llava_processor):
    assert chat_prompt(llava_processor, "Describe.") == "USER: <image> Describe.\nASSISTANT:"
    assert response_text(llava_processor, "Describe.", "A red circle.") == " A red circle.</s>\n"


def test_labels_cover_exactly_the_response_and_padding_is_masked(llava_processor, images):
    tok = llava_processor.tokenizer
    collate = CaptionCollator(llava_processor)
    examples = [{"image": images[0], "instruction": "Describe.", "response": "A red circle."},
                {"image": images[1], "instruction": "Describe the image in detail.",
                 "response": "Two blue squares above a green star on a white background."}]
    batch = collate(examples)
    assert batch["pixel_values"].shape == (2, 3, 64, 64)
    for row, example in enumerate(examples):
        answer = response_text(llava_processor, example["instruction"], example["response"])
        expected = tok(answer, add_special_tokens=False)["input_ids"]
        labelled = batch["labels"][row][batch["labels"][row] != IGNORE_INDEX].tolist()
        assert labelled == expected
        assert expected[-2] == tok.eos_token_id or expected[-1] == tok.eos_token_id
        n = int(batch["attention_mask"][row].sum())
        assert (batch["input_ids"][row, n:] == tok.pad_token_id).all()
        # the labelled tokens are the last ones before padding
        assert batch["input_ids"][row, n - len(expected):n].tolist() == expected
    image_id = tok.convert_tokens_to_ids("<image>")
    assert ((batch["input_ids"] == image_id) & (batch["labels"] != IGNORE_INDEX)).sum() == 0


def test_preference_pairs_stack_chosen_then_rejected(llava_processor, images):
    collate = CaptionCollator(llava_processor)
    pairs = [{"image": images[i], "instruction": "Describe.", "chosen": "A red circle.",
              "rejected": "A blue blue blue square square."} for i in range(3)]
    batch = collate(pairs)
    assert batch["input_ids"].shape[0] == 6 and batch["pixel_values"].shape[0] == 6
    torch.testing.assert_close(batch["pixel_values"][:3], batch["pixel_values"][3:])
    assert (batch["labels"][:3] != IGNORE_INDEX).sum() < (batch["labels"][3:] != IGNORE_INDEX).sum()


def test_max_length_truncates_the_response_only(llava_processor, images, caplog):
    example = {"key": "img-1", "image": images[0], "instruction": "Describe.", "response": "red " * 50}
    full = CaptionCollator(llava_processor)([example])
    cutting = CaptionCollator(llava_processor, max_length=100)
    cut = cutting([example])
    assert full["input_ids"].shape[1] > 100 and cut["input_ids"].shape[1] == 100
    assert cutting.counts["truncated"] == 1 and cutting.counts["lost"] == 0
    losing = CaptionCollator(llava_processor, max_length=10)
    lost = losing([example])  # the prompt alone fills max_length: counted and reported, not silently zeroed
    assert losing.counts["lost"] == 1 and (lost["labels"] == IGNORE_INDEX).all()
    assert "'img-1'" in caplog.text and "keeps 0 of its" in caplog.text
