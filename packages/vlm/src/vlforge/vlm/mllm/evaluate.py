"""Evaluate an MLLM by greedy generation on questions about images and score the answers.

``evaluate_mllm`` asks every question (``{"id", "image", "question", "answer", "type"}``, the image a PIL image)
in the user turn of the processor's chat template, image first, followed by LLaVA-1.5's short-answer prompt;
generates greedily in batches (left padding, so each answer continues its own prompt); checks each sample's image
tokens against its image's features; and scores with ``vqa_accuracy`` per type (exact match after normalisation)
and, for yes/no types (``presence``, ``pope_*``), POPE's metrics per type.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from vlforge.common.errors import VLForgeError
from vlforge.common.metrics.pope import pope_metrics
from vlforge.common.metrics.vqa import vqa_accuracy
from vlforge.common.shapes.llava_qa import SHORT_ANSWER_PROMPT
from vlforge.vlm.mllm.image_tokens import check_image_tokens
from vlforge.vlm.mllm.questions import POPE_PREFIX

YES_NO_TYPES = ("presence",)
_QUESTION_KEYS = ("id", "image", "question", "answer", "type")


def is_yes_no(kind: str) -> bool:
    return kind in YES_NO_TYPES or kind.startswith(POPE_PREFIX)


def prompt_text(processor: Any, question: str, answer_prompt: str | None) -> str:
    """The chat-template prompt of one question about one image, ending where the assistant's answer starts."""
    text = question if answer_prompt is None else f"{question}\n{answer_prompt}"
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True)


@torch.no_grad()
def generate_answers(model: torch.nn.Module, processor: Any, questions: Sequence[dict[str, Any]],
                     batch_size: int = 8, max_new_tokens: int = 8, answer_prompt: str | None = SHORT_ANSWER_PROMPT,
                     progress: Callable[[int, int], None] | None = None) -> list[str]:
    """Greedy answers to ``questions``, in order; ``progress(done, total)`` is called after each batch."""
    tokenizer = processor.tokenizer
    device = next(model.parameters()).device
    answers: list[str] = []
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        for start in range(0, len(questions), batch_size):
            batch = questions[start:start + batch_size]
            inputs = processor(text=[prompt_text(processor, q["question"], answer_prompt) for q in batch],
                               images=[q["image"] for q in batch], padding=True, return_tensors="pt")
            check_image_tokens(inputs["input_ids"], model.config, [1] * len(batch), inputs["pixel_values"],
                               [str(q["id"]) for q in batch])
            inputs = inputs.to(device)
            output = model.generate(**inputs, do_sample=False, num_beams=1, max_new_tokens=max_new_tokens,
                                    pad_token_id=tokenizer.pad_token_id)
            new_tokens = output[:, inputs["input_ids"].shape[1]:]
            answers += [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
            if progress is not None:
                progress(len(answers), len(questions))
    finally:
        tokenizer.padding_side = side
    return answers


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
    was_training = model.training
    model.eval()
    try:
        answers = generate_answers(model, processor, questions, batch_size, max_new_tokens, answer_prompt, progress)
    finally:
        model.train(was_training)
    result = score_answers(questions, answers)
    result["answers"] = [{"id": q["id"], "type": q["type"], "answer": q["answer"], "prediction": a}
                         for q, a in zip(questions, answers, strict=True)]
    return result
