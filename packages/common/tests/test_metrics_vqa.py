"""Short-answer VQA accuracy per question type, exact match after normalisation."""

from __future__ import annotations

import pytest

from vlforge.common.errors import VLForgeError
from vlforge.common.metrics.vqa import normalize_answer, vqa_accuracy


@pytest.mark.parametrize(("text", "normal"), [
    ("Red.", "red"), ("  the Red  ", "red"), ("Three", "3"), ("3", "3"), ("a blue circle!", "blue circle"),
    ("Bottom left", "bottom left"), ("center", "centre"), ("Gray", "grey"), ("yes\nUSER: more", "yes"),
    ("HELLO, world", "hello world"), ("", ""), ("twenty", "20"),
])
def test_normalisation(text, normal):
    assert normalize_answer(text) == normal


def test_accuracy_per_type_against_a_direct_count():
    predictions = ["Red", "two", "left", "No.", "blue", "4", "yes", "STOP"]
    answers = ["red", "2", "bottom left", "no", "green", "4", "no", "stop"]
    types = ["colour", "count", "position", "presence", "colour", "count", "presence", "text"]
    result = vqa_accuracy(predictions, answers, types)
    hits = [True, True, False, True, False, True, False, True]
    for kind in set(types):
        rows = [h for h, t in zip(hits, types, strict=True) if t == kind]
        assert result[kind] == {"correct": sum(rows), "total": len(rows), "accuracy": sum(rows) / len(rows)}
    assert result["all"] == {"correct": 5, "total": 8, "accuracy": 5 / 8}
    assert list(result) == ["all", "colour", "count", "position", "presence", "text"]
    with pytest.raises(VLForgeError, match="differ in number"):
        vqa_accuracy(["a"], ["a", "b"], ["colour"])
