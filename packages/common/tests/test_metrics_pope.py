"""POPE: the yes/no reading and metrics against a direct reimplementation of RUCAIBox/POPE's evaluate.py, and the
question sets built from ShapesWorld scene graphs against POPE's sampling (utils.pope)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from vlforge.common.errors import VLForgeError
from vlforge.common.metrics.pope import pope_answer, pope_metrics
from vlforge.common.shapes.build import generate_records
from vlforge.common.shapes.pope import pope_questions, scene_object_names

ANSWERS = ["Yes", "No", "No.", "no, there is not.", "Yes, there is a red circle. No other shape.",
           "There is no red circle", "NO", "Not sure", "not", "yes.", "", "I do not see it", "Nope",
           "Yes. not", "no,", "No there isn't"]


def _pope_evaluate(answers, labels):
    """RUCAIBox/POPE evaluate.py, line for line, without file IO."""
    parsed = []
    for text in answers:
        if text.find(".") != -1:
            text = text.split(".")[0]
        text = text.replace(",", "")
        words = text.split(" ")
        parsed.append("no" if ("No" in words or "not" in words or "no" in words) else "yes")
    label_list = [0 if label == "no" else 1 for label in labels]
    pred_list = [0 if answer == "no" else 1 for answer in parsed]
    pos, neg = 1, 0
    yes_ratio = pred_list.count(1) / len(pred_list)
    TP, TN, FP, FN = 0, 0, 0, 0  # noqa: N806 - POPE's names
    for pred, label in zip(pred_list, label_list, strict=True):
        if pred == pos and label == pos:
            TP += 1  # noqa: N806
        elif pred == pos and label == neg:
            FP += 1  # noqa: N806
        elif pred == neg and label == neg:
            TN += 1  # noqa: N806
        elif pred == neg and label == pos:
            FN += 1  # noqa: N806
    precision = float(TP) / float(TP + FP)
    recall = float(TP) / float(TP + FN)
    f1 = 2 * precision * recall / (precision + recall)
    acc = (TP + TN) / (TP + TN + FP + FN)
    return parsed, {"accuracy": acc, "precision": precision, "recall": recall, "f1": f1, "yes_ratio": yes_ratio,
                    "tp": TP, "fp": FP, "tn": TN, "fn": FN}


@pytest.mark.parametrize("seed", range(5))
def test_metrics_match_popes_evaluate(seed):
    rng = random.Random(seed)
    answers = [rng.choice(ANSWERS) for _ in range(40)]
    labels = [rng.choice(["yes", "no"]) for _ in range(40)]
    parsed, expected = _pope_evaluate(answers, labels)
    assert [pope_answer(a) for a in answers] == parsed
    assert pope_metrics(answers, labels) == pytest.approx(expected)


def test_yes_no_reading_and_a_hand_computed_case():
    assert [pope_answer(a) for a in ("No.", "no, it is not", "NO", "Nope", "Yes. No", "not")] == [
        "no", "no", "yes", "yes", "yes", "no"]
    metrics = pope_metrics(["yes", "yes", "no", "yes", "no"], ["yes", "no", "no", "yes", "yes"])
    assert (metrics["tp"], metrics["fp"], metrics["tn"], metrics["fn"]) == (2, 1, 1, 1)
    assert metrics["precision"] == pytest.approx(2 / 3) and metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["accuracy"] == pytest.approx(0.6) and metrics["yes_ratio"] == pytest.approx(0.6)
    assert metrics["f1"] == pytest.approx(2 / 3)
    assert pope_metrics(["no"], ["no"])["precision"] == 0.0  # POPE divides by zero here
    with pytest.raises(VLForgeError, match="as many answers as labels"):
        pope_metrics(["yes"], ["yes", "no"])


def _pope_sampling(images, sample_num, strategy):
    """RUCAIBox/POPE utils.pope over (image, objects) pairs, deterministic branches only: returns the questions as
    (image, object, label), None for a negative POPE would draw at random and for every later negative of that image
    (they depend on the random one)."""
    frequency = Counter(o for _, objects in images for o in objects)
    sorted_objects = sorted(frequency.items(), key=lambda x: x[1], reverse=True)
    co_occur = {}
    for _, objects in images:
        for o in objects:
            co_occur.setdefault(o, {})
            for other in objects:
                if other != o:
                    co_occur[o][other] = co_occur[o].get(other, 0) + 1
    sorted_co_occur = {o: [k for k, _ in sorted(v.items(), key=lambda x: x[1], reverse=True)]
                       for o, v in co_occur.items()}
    out = []
    for image, objects in images:
        history, drew_random = [], False
        for i in range(sample_num):
            positive = objects[i]
            history.append(positive)
            out.append((image, positive, "yes"))
            ranked = [o for o, _ in sorted_objects] if strategy == "popular" else sorted_co_occur[positive]
            chosen = next((o for o in ranked if o not in history and o not in objects), None)
            drew_random = drew_random or chosen is None
            history.append(chosen)
            out.append(None if drew_random else (image, chosen, "no"))
    return out


@pytest.fixture(scope="module")
def records():
    return list(generate_records(80, 0, workers=1))


@pytest.mark.parametrize("strategy", ["popular", "adversarial"])
def test_question_sets_follow_popes_sampling(records, strategy):
    sample_num = 2
    questions = pope_questions(records, strategy, sample_num=sample_num)
    images = [(r.image_id, scene_object_names(r)) for r in records if len(scene_object_names(r)) >= sample_num]
    expected = _pope_sampling(images, sample_num, strategy)
    got = [(q["image_id"], q["object"], q["label"]) for q in questions]
    assert len(got) == len(expected) == 2 * sample_num * len(images)
    compared = [(g, e) for g, e in zip(got, expected, strict=True) if e is not None]
    assert len(compared) > 0.9 * len(got)
    mismatches = [(g, e) for g, e in compared if g != e]
    assert not mismatches, mismatches[:3]


@pytest.mark.parametrize("strategy", ["random", "popular", "adversarial"])
def test_every_image_gets_present_and_absent_objects(records, strategy):
    questions = pope_questions(records, strategy, sample_num=2, seed=1)
    objects = {r.image_id: set(scene_object_names(r)) for r in records}
    per_image = Counter((q["image_id"], q["label"]) for q in questions)
    assert set(per_image.values()) == {2}
    for q in questions:
        assert (q["object"] in objects[q["image_id"]]) == (q["label"] == "yes")
        assert q["question"] == f"Is there {'an' if q['object'][0] in 'aeiou' else 'a'} {q['object']} in the image?"
    assert pope_questions(records, strategy, sample_num=2, seed=1) == questions
    assert not any(len(objects[q["image_id"]]) < 2 for q in questions)


def test_negatives_differ_by_strategy_and_bad_arguments_are_refused(records):
    negatives = {s: [q["object"] for q in pope_questions(records, s) if q["label"] == "no"]
                 for s in ("random", "popular", "adversarial")}
    assert len(set(negatives["popular"])) < len(set(negatives["random"]))
    assert negatives["adversarial"] != negatives["popular"]
    with pytest.raises(VLForgeError, match="strategy 'hard'"):
        pope_questions(records, "hard")
