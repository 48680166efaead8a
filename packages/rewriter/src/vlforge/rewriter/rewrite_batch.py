"""Rewriting the queries of a batch of store records with a policy (query-rewriter paper §3.5: at inference the
rewriter turns each query into the opted-query the retriever sees), no Lightning.

Each query (kind ``query`` of ``query_source``) goes through ``instruction`` (a template with ``{query}``, the one
the policy was trained with) and the policy's prompt style; decoding is seeded per batch
(:func:`vlforge.common.lm.generated_store.batch_seed`), so a rerun or another rank writes the same text. A rewrite
is skipped and counted with its query id when it is empty (``empty_rewrite``) or over-long
(``rewrite_too_long``: generation hit ``max_new_tokens`` without ending, or more than ``max_rewrite_words`` words,
i.e. more than the retriever's text context holds). Kept rewrites become captions of kind ``query`` with the
rewriter's name as source and the provenance of :mod:`vlforge.common.rewrites` plus the policy, its checkpoint,
the instruction, decoding and seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

import vlforge.rewriter as _rewriter
from vlforge.common.errors import VLForgeError
from vlforge.common.lm.generate import generate_sequences
from vlforge.common.lm.generated_store import batch_seed, generated_caption, now
from vlforge.common.lm.prompts import tokenizer_of
from vlforge.common.records import Caption, ImageRecord
from vlforge.common.rewrites import QUERIES_KEY, QUERY_KIND, queries_of
from vlforge.rewriter.examples import INSTRUCTION, instruction_of

DEFAULT_DECODING = {"max_new_tokens": 48, "num_beams": 1, "do_sample": False}


@dataclass
class RewriteSettings:
    """How a policy rewrites: ``name`` (the source its rewrites are stored under), the policy's ``source`` and
    ``checkpoint`` (provenance), ``instruction`` (template with ``{query}``), ``prompt_style``, ``decoding``
    (``model.generate`` keyword arguments), ``seed``, ``max_rewrite_words``, which captions are queries."""

    name: str = "rewriter"
    source: str = ""
    checkpoint: str | None = None
    instruction: str = INSTRUCTION
    prompt_style: str = "chat"
    decoding: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_DECODING))
    seed: int = 0
    max_rewrite_words: int = 40
    query_source: str = "gt"
    query_kind: str = QUERY_KIND

    def __post_init__(self) -> None:
        instruction_of("", self.instruction)  # a template without {query} is one line naming it
        if self.max_rewrite_words < 1:
            raise VLForgeError(f"max_rewrite_words must be >= 1, got {self.max_rewrite_words}")

    def provenance(self) -> dict[str, Any]:
        return {"policy": self.source, "checkpoint": self.checkpoint, "instruction": self.instruction,
                "prompt_style": self.prompt_style, "decoding": dict(self.decoding), "seed": self.seed}


@dataclass
class RewrittenBatch:
    """Captions to append per image id; failed queries (query id -> reason); the counts of this batch."""

    captions: dict[str, list[Caption]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    rewritten: list[str] = field(default_factory=list)  # query ids


def skip_reason(text: str, ended: bool, max_words: int) -> str | None:
    """Why a rewrite cannot be stored (None when it can)."""
    if not text.strip():
        return "empty_rewrite"
    if not ended or len(text.split()) > max_words:
        return "rewrite_too_long"
    return None


def rewrite_records(model: torch.nn.Module, processor: Any, records: list[ImageRecord], settings: RewriteSettings,
                    batch_size: int = 8) -> RewrittenBatch:
    """Rewrite every query of ``records`` (see the module docstring)."""
    queries = [(record, qid, caption.text) for record in records
               for qid, caption in queries_of(record, settings.query_source, settings.query_kind)]
    out = RewrittenBatch()
    if not queries:
        return out
    device = next(model.parameters()).device
    prompts = [instruction_of(text, settings.instruction) for _, _, text in queries]
    eos = tokenizer_of(processor).eos_token_id
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(batch_seed(settings.seed, queries[0][1]))
        generated = generate_sequences(model, processor, prompts, decoding=settings.decoding, batch_size=batch_size,
                                       prompt_style=settings.prompt_style, with_logprobs=False)
    time, provenance = now(), settings.provenance()
    by_image: dict[str, dict[str, list[dict[str, str]]]] = {}
    for (record, qid, original), sequence in zip(queries, generated, strict=True):
        ids = sequence.response_ids
        ended = bool(ids.numel()) and int(ids[-1]) == eos
        reason = skip_reason(sequence.text, ended, settings.max_rewrite_words)
        if reason is not None:
            out.failed[qid] = reason
            continue
        out.rewritten.append(qid)
        by_image.setdefault(record.image_id, {}).setdefault(sequence.text, []).append(
            {"query_id": qid, "original": original})
    generator = f"vlforge-rewriter {_rewriter.__version__}"
    for image_id, texts in by_image.items():
        out.captions[image_id] = [generated_caption(text, settings.name, QUERY_KIND, {**provenance, QUERIES_KEY: q},
                                                    generator, time) for text, q in texts.items()]
    return out
