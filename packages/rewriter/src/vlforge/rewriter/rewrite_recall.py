"""Hard-query text-to-image R@1 with the frozen retriever, for raw queries and for a rewriter's greedy rewrites
(the query-rewriter paper's Table 3 measure on ShapesWorld's hard queries).

A query is a store caption (ShapesWorld: source "gt", kind "query") of an image of the gallery split; R@1 is the
share of queries whose right image the retriever ranks first among the split's images (a tie counts as a miss,
:meth:`Retriever.ranks`). An empty rewrite is replaced by its raw query and counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from vlforge.common.lm.generate import generate_texts
from vlforge.common.lm.model import GenerativeModel
from vlforge.common.store import CaptionStore
from vlforge.rewriter.examples import INSTRUCTION, instruction_of
from vlforge.rewriter.retriever import ImageIndex, Retriever

GREEDY = {"max_new_tokens": 48, "do_sample": False, "num_beams": 1}


@dataclass
class HardQuery:
    query_id: str
    image_id: str
    text: str


def hard_queries(store: str, split: str, source: str = "gt", kind: str = "query") -> list[HardQuery]:
    """The split's queries, ids as in make-data (``<image_id>#<caption index>``)."""
    queries = []
    for record in CaptionStore(store).iter_records(split=split):
        for k, caption in enumerate(record.captions):
            if caption.source == source and caption.kind == kind and caption.text.strip():
                queries.append(HardQuery(f"{record.image_id}#{k}", record.image_id, caption.text))
    return queries


def rewrite(policy: GenerativeModel, queries: list[str], template: str = INSTRUCTION,
            decoding: dict | None = None, batch_size: int = 32, prompt_style: str = "chat") -> tuple[list[str], int]:
    """Greedy rewrites of ``queries`` (an empty one replaced by its query) and the number replaced."""
    texts = generate_texts(policy, None, [instruction_of(q, template) for q in queries], None, decoding or GREEDY,
                           batch_size, prompt_style)
    empty = sum(not t.strip() for t in texts)
    return [t if t.strip() else q for t, q in zip(texts, queries, strict=True)], empty


def recall_at_1(retriever: Retriever, index: ImageIndex, texts: list[str], image_ids: list[str]) -> float:
    """T2I R@1 in percent."""
    ranks, _ = retriever.ranks(texts, index, image_ids)
    return 100.0 * float((ranks == 1).float().mean())
