"""POPE's yes/no reading of an answer and its metrics, as RUCAIBox/POPE's ``evaluate.py`` computes them
(Li et al., "Evaluating Object Hallucination in Large Vision-Language Models", EMNLP 2023).

An answer is "no" when its first sentence (the text before the first ".", commas removed, split on spaces)
contains the word "No", "no" or "not"; anything else is "yes". With "yes" the positive class::

    accuracy = (TP + TN) / (TP + TN + FP + FN)      precision = TP / (TP + FP)      recall = TP / (TP + FN)
    F1 = 2 * precision * recall / (precision + recall)      yes_ratio = #(predicted yes) / #answers

POPE divides by zero where a denominator is 0; here that ratio is 0.0.
"""

from __future__ import annotations

from collections.abc import Sequence

from vlforge.common.errors import VLForgeError

NEGATIVE_WORDS = ("No", "not", "no")


def pope_answer(text: str) -> str:
    """"yes" or "no" as POPE reads a free-form answer (module docstring)."""
    if "." in text:
        text = text.split(".")[0]
    words = text.replace(",", "").split(" ")
    return "no" if any(word in words for word in NEGATIVE_WORDS) else "yes"


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def pope_metrics(answers: Sequence[str], labels: Sequence[str]) -> dict[str, float | int]:
    """accuracy, precision, recall, f1, yes_ratio and the counts tp / fp / tn / fn of free-form ``answers`` against
    ``labels`` ("yes" / "no"; any label other than "no" is "yes", as in POPE)."""
    if len(answers) != len(labels) or not answers:
        raise VLForgeError(f"POPE needs as many answers as labels, at least one ({len(answers)} answers, "
                           f"{len(labels)} labels)")
    predicted = [pope_answer(a) == "yes" for a in answers]
    actual = [label != "no" for label in labels]
    tp = sum(p and a for p, a in zip(predicted, actual, strict=True))
    fp = sum(p and not a for p, a in zip(predicted, actual, strict=True))
    tn = sum(not p and not a for p, a in zip(predicted, actual, strict=True))
    fn = sum(not p and a for p, a in zip(predicted, actual, strict=True))
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return {"accuracy": (tp + tn) / len(answers), "precision": precision, "recall": recall,
            "f1": _ratio(2 * precision * recall, precision + recall), "yes_ratio": sum(predicted) / len(answers),
            "tp": tp, "fp": fp, "tn": tn, "fn": fn}
