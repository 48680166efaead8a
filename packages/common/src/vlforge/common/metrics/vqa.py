"""Short-answer VQA accuracy by exact match after normalisation, per question type (ShapesWorld's colour, count,
position, presence, text).

Normalisation (the VQA evaluation's kind, made for one-word answers): the first line only; lower-case;
punctuation dropped; the articles a / an / the dropped; number words zero..twenty written as digits; US spellings
"center" / "gray" as "centre" / "grey"; whitespace collapsed. accuracy = correct / total.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence

from vlforge.common.errors import VLForgeError

NUMBER_WORDS = {word: str(value) for value, word in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
SPELLINGS = {"center": "centre", "gray": "grey"}
ARTICLES = {"a", "an", "the"}
_PUNCTUATION = re.compile(r"[^\w\s]")


def _canonical(word: str) -> str:
    word = NUMBER_WORDS.get(word, word)
    return SPELLINGS.get(word, word)


def normalize_answer(text: str) -> str:
    """The normalised form of a short answer (module docstring)."""
    first_line = text.strip().split("\n", 1)[0] if text.strip() else ""
    words = _PUNCTUATION.sub(" ", first_line.lower()).split()
    return " ".join(_canonical(w) for w in words if w not in ARTICLES)


def vqa_accuracy(predictions: Sequence[str], answers: Sequence[str],
                 types: Sequence[str]) -> dict[str, dict[str, float | int]]:
    """``{"all": {...}, <type>: {...}}`` with ``correct``, ``total`` and ``accuracy`` for each question type."""
    if not len(predictions) == len(answers) == len(types):
        raise VLForgeError(f"{len(predictions)} predictions, {len(answers)} answers and {len(types)} types differ "
                           "in number")
    correct: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    for prediction, answer, kind in zip(predictions, answers, types, strict=True):
        hit = normalize_answer(prediction) == normalize_answer(answer)
        for key in ("all", kind):
            total[key] += 1
            correct[key] += hit
    return {key: {"correct": correct[key], "total": total[key], "accuracy": correct[key] / total[key]}
            for key in ["all", *sorted(k for k in total if k != "all")] if total[key]}
