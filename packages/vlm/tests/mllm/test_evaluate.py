"""evaluate_mllm: greedy answers of a built tiny LLaVA to ShapesWorld VQA and POPE questions, batched with left
padding exactly as one at a time, and scored per question type."""

from __future__ import annotations

import json

import pytest
import torch

from vlforge.common.errors import VLForgeError
from vlforge.common.lm.prompts import prompt_text
from vlforge.common.metrics.pope import pope_metrics
from vlforge.common.metrics.vqa import vqa_accuracy
from vlforge.common.shapes.llava_qa import shapes_qa_to_llava
from vlforge.common.store import CaptionStore
from vlforge.vlm.mllm import build_llava
from vlforge.vlm.mllm.evaluate import evaluate_mllm, question_instruction, score_answers
from vlforge.vlm.mllm.questions import llava_json_questions, shapes_pope_questions, shapes_vqa_questions


@pytest.fixture(scope="module")
def llava(towers):
    torch.manual_seed(0)
    model, processor = build_llava(towers["clip"], "preset:llama_tiny")
    return model, processor


@pytest.fixture(scope="module")
def questions(shapes_store):
    vqa = shapes_vqa_questions(shapes_store, "test", limit=2)
    pope = shapes_pope_questions(shapes_store, "test", "adversarial", limit=3)
    return vqa[:7] + pope


def _one_at_a_time(model, processor, questions, max_new_tokens):
    answers = []
    for q in questions:
        instruction = question_instruction(q["question"], "Answer the question using a single word or phrase.")
        inputs = processor(text=[prompt_text(processor, instruction)], images=[q["image"]], return_tensors="pt")
        output = model.generate(**inputs, do_sample=False, max_new_tokens=max_new_tokens)
        answers.append(processor.tokenizer.decode(output[0, inputs["input_ids"].shape[1]:],
                                                  skip_special_tokens=True).strip())
    return answers


def test_batched_greedy_answers_equal_one_at_a_time_and_are_scored(llava, questions):
    model, processor = llava
    calls = []
    result = evaluate_mllm(model, processor, questions, batch_size=4, max_new_tokens=4,
                           progress=lambda done, total: calls.append((done, total)))
    predictions = [a["prediction"] for a in result["answers"]]
    assert predictions == _one_at_a_time(model, processor, questions, 4)
    total = len(questions)
    assert any(predictions) and calls == [(min(n, total), total) for n in range(4, total + 4, 4)]
    types = [q["type"] for q in questions]
    assert {"pope_adversarial", "count"} <= set(types)
    assert result["vqa"] == vqa_accuracy(predictions, [q["answer"] for q in questions], types)
    pope = [(p, q["answer"]) for p, q in zip(predictions, questions, strict=True) if q["type"] == "pope_adversarial"]
    assert result["pope"]["pope_adversarial"] == pope_metrics([p for p, _ in pope], [a for _, a in pope])
    assert processor.tokenizer.padding_side == "right"


def test_scores_of_right_and_wrong_answers(questions):
    truth = [q["answer"] for q in questions]
    perfect = score_answers(questions, truth)
    assert all(row["accuracy"] == 1.0 for row in perfect["vqa"].values())
    assert perfect["pope"]["pope_adversarial"]["f1"] == 1.0
    flipped = ["no" if a == "yes" else "yes" if a == "no" else "wrong" for a in truth]
    wrong = score_answers(questions, flipped)
    assert wrong["vqa"]["all"]["accuracy"] == 0.0 and wrong["pope"]["pope_adversarial"]["accuracy"] == 0.0
    labels = [q["answer"] for q in questions if q["type"] == "pope_adversarial"]
    assert wrong["pope"]["pope_adversarial"]["yes_ratio"] == labels.count("no") / len(labels)


def test_question_sets_from_the_store(shapes_store, questions):
    pope = [q for q in questions if q["type"] == "pope_adversarial"]
    assert {q["answer"] for q in pope} == {"yes", "no"} and all(q["image"].size == (32, 32) for q in questions)
    assert len({q["id"] for q in questions}) == len(questions)
    with pytest.raises(VLForgeError, match="QA type 'shape'"):
        shapes_vqa_questions(shapes_store, "test", types=["shape"])
    with pytest.raises(VLForgeError, match="no QA pairs"):
        shapes_vqa_questions(shapes_store, "no_such_split")


def test_bad_questions_are_one_line_errors(llava, questions):
    model, processor = llava
    with pytest.raises(VLForgeError, match="question .*: no 'answer'"):
        evaluate_mllm(model, processor, [{k: v for k, v in questions[0].items() if k != "answer"}])
    with pytest.raises(VLForgeError, match="no questions"):
        evaluate_mllm(model, processor, [])


def test_llava_json_question_file(llava, shapes_store, tmp_path):
    with CaptionStore(shapes_store) as store:
        records = list(store.iter_records("test"))[:2]
    for record in records:
        (tmp_path / f"{record.image_id}.png").write_bytes(record.image_bytes)
    rows = shapes_qa_to_llava(records, answer_prompt=None)
    rows.append({"id": "chat", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hi"}]})
    (tmp_path / "qa.json").write_text(json.dumps(rows))
    questions, summary = llava_json_questions(tmp_path / "qa.json")
    expected = [qa for record in records for qa in record.meta["qa"]]
    assert [(q["question"], q["answer"]) for q in questions] == [(qa["question"], qa["answer"]) for qa in expected]
    assert summary.kept == 2 and dict(summary.skipped) == {"no_image": ["chat"]}
    model, processor = llava
    result = evaluate_mllm(model, processor, questions[:3], answer_prompt=None, max_new_tokens=2)
    assert result["vqa"]["llava_json"]["total"] == 3
