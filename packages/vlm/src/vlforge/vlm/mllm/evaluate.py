"""Evaluate an MLLM by greedy generation on questions about images and score the answers.

``evaluate_mllm`` asks every question (``{"id", "image", "question", "answer", "type"}``, the image a PIL image)
in the user turn of the processor's chat template, image first, followed by LLaVA-1.5's short-answer prompt;
generates greedily in batches through ``vlforge.common.lm.generate`` (left padding, so each answer continues its own
prompt); checks the image tokens against the image's features; and scores with ``vqa_accuracy`` per type (exact
match after normalisation) and, for yes/no types (``presence``, ``pope_*``), POPE's metrics per type.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from vlforge.common.errors import VLForgeError
from vlforge.common.lm.generate import generate_texts
from vlforge.common.lm.prompts import prompt_text
from vlforge.common.metrics.pope import pope_metrics
from vlforge.common.metrics.vqa import vqa_accuracy
from vlforge.common.shapes.llava_qa import SHORT_ANSWER_PROMPT
from vlforge.vlm.mllm.image_tokens import check_image_tokens
from vlforge.vlm.mllm.questions import POPE_PREFIX

YES_NO_TYPES = ("presence",)
_QUESTION_KEYS = ("id", "image", "question", "answer", "type")


def is_yes_no(kind: str) -> bool:
    return kind in YES_NO_TYPES or kind.startswith(POPE_PREFIX)


def question_instruction(question: str, answer_prompt: str | None) -> str:
    """The user turn's text of one question: the question, then ``answer_prompt`` on its own line (when given)."""
    return question if answer_prompt is None else f"{question}\n{answer_prompt}"


def generate_answers(model: torch.nn.Module, processor: Any, questions: Sequence[dict[str, Any]],
                     batch_size: int = 8, max_new_tokens: int = 8, answer_prompt: str | None = SHORT_ANSWER_PROMPT,
                     progress: Callable[[int, int], None] | None = None) -> list[str]:
    """Greedy answers to ``questions``, in order, through :func:`vlforge.common.lm.generate.generate_texts` (chat
    prompt style); ``progress(done, total)`` is called after each batch. The first question's image tokens are
    checked against its image's features first (a processor that does not match the model is a one-line error)."""
    instructions = [question_instruction(q["question"], answer_prompt) for q in questions]
    if questions:
        first = processor(text=[prompt_text(processor, instructions[0])], images=[questions[0]["image"]],
                          return_tensors="pt")
        check_image_tokens(first["input_ids"], model.config, [1], first["pixel_values"], [str(questions[0]["id"])])
    decoding = {"do_sample": False, "num_beams": 1, "max_new_tokens": max_new_tokens,
                "pad_token_id": processor.tokenizer.pad_token_id}
    return generate_texts(model, processor, instructions, [q["image"] for q in questions], decoding, batch_size,
                          progress=progress)


def score_answers(questions: Sequence[dict[str, Any]], answers: Sequence[str]) -> dict[str, Any]:
    """``{"vqa": vqa_accuracy per type, "pope": {type: pope_metrics} for the yes/no types}``."""
    types = [q["type"] for q in questions]
    result: dict[str, Any] = {"vqa": vqa_accuracy(answers, [q["answer"] for q in questions], types), "pope": {}}
    for kind in sorted({t for t in types if is_yes_no(t)}):
        rows = [(a, q["answer"]) for a, q in zip(answers, questions, strict=True) if q["type"] == kind]
        result["pope"][kind] = pope_metrics([a for a, _ in rows], [label for _, label in rows])
    return result


def evaluate_mllm(model: torch.nn.Module, processor: Any, questions: Sequence[dict[str, Any]], batch_size: int = 8,
                  max_new_tokens: int = 8, answer_prompt: str | None = SHORT_ANSWER_PROMPT,
                  progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Answers and scores (module docstring): ``{"vqa", "pope", "answers": [{"id", "type", "answer",
    "prediction"}]}``."""
    for question in questions:
        missing = [key for key in _QUESTION_KEYS if key not in question]
        if missing:
            raise VLForgeError(f"question {question.get('id', '?')}: no {missing[0]!r}")
    if not questions:
        raise VLForgeError("evaluate_mllm: no questions")
    answers = generate_answers(model, processor, questions, batch_size, max_new_tokens, answer_prompt, progress)
    result = score_answers(questions, answers)
    result["answers"] = [{"id": q["id"], "type": q["type"], "answer": q["answer"], "prediction": a}
                         for q, a in zip(questions, answers, strict=True)]
    return result
