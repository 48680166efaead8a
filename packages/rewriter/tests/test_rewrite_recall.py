"""Hard-query R@1 of raw queries and of a rewriter's greedy rewrites (used by experiments/rewriter/training_outcome.py)
with a real store, a real tiny CLIP and the SFT run of the console."""

from __future__ import annotations

import torch

from vlforge.common.lm.generate import generate_texts
from vlforge.common.lm.model import GenerativeModel
from vlforge.common.store import CaptionStore
from vlforge.rewriter.embedding_cache import cached_image_index
from vlforge.rewriter.examples import instruction_of
from vlforge.rewriter.retriever import Retriever
from vlforge.rewriter.rewrite_recall import GREEDY, hard_queries, recall_at_1, rewrite
from vlforge.vlm.loading import load_clip


def test_hard_query_recall_of_raw_queries_and_rewrites(shapes_store, retriever_checkpoint, sft_run):
    queries = hard_queries(shapes_store, "val")
    records = list(CaptionStore(shapes_store).iter_records(split="val"))
    expected = [(r.image_id, c.text) for r in records for c in r.captions if c.source == "gt" and c.kind == "query"]
    assert [(q.image_id, q.text) for q in queries] == expected and queries
    model = load_clip(retriever_checkpoint)
    index, _ = cached_image_index(model, shapes_store, "val", retriever_checkpoint, 32)
    retriever = Retriever(model)
    texts, images = [q.text for q in queries], [q.image_id for q in queries]
    similarities = retriever.encode_texts(texts) @ index.features.T
    right = torch.tensor([index.row(i) for i in images])
    hits = 0
    for row, column in enumerate(right.tolist()):  # rank 1: the right image scores above every other image
        others = torch.cat([similarities[row, :column], similarities[row, column + 1:]])
        hits += bool((similarities[row, column] > others).all())
    assert abs(recall_at_1(retriever, index, texts, images) - 100.0 * hits / len(texts)) < 1e-6
    policy = GenerativeModel("preset:llama_tiny", weights=str(sft_run / "checkpoints" / "last.ckpt"))
    rewrites, empty = rewrite(policy, texts[:6])
    generated = generate_texts(policy, None, [instruction_of(q) for q in texts[:6]], None, GREEDY, 32, "chat")
    assert empty == sum(not g.strip() for g in generated)
    assert rewrites == [g if g.strip() else q for g, q in zip(generated, texts[:6])]  # an empty one: its query
    assert rewrites != texts[:6]  # the policy writes its own text
