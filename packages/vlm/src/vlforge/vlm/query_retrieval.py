"""Text-to-image retrieval with hard queries, raw and as a query rewriter rewrote them (query-rewriter paper §3.5:
at inference each query is replaced by the rewriter's opted-query before the text encoder).

The queries are a split's captions matching ``queries`` (ShapesWorld: source "gt", kind "query"); the rewrites are
the captions of source ``rewriter`` whose provenance names the query they rewrite (:mod:`vlforge.common.rewrites`,
written by ``vlforge-rewriter predict``). Both runs retrieve over the same gallery with the same queries, so the
two R@k are paired: a query the rewriter skipped (no stored rewrite) keeps its raw text in the rewritten run and is
counted in ``num_fallback``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vlforge.common.errors import VLForgeError
from vlforge.common.rewrites import query_id, rewrites_by_query
from vlforge.common.sampling import CaptionChoice
from vlforge.vlm.evaluation import SplitEncoding, encode_texts, retrieval_from_features

T2I_KEYS = ("t2i_r1", "t2i_r5", "t2i_r10", "t2i_median_rank")


def _t2i(model: nn.Module, encoding: SplitEncoding, texts: list[str], owners: torch.Tensor,
         batch_size: int) -> dict[str, float]:
    result = retrieval_from_features(encoding.image_features, encode_texts(model, texts, batch_size), owners)
    return {key: result[key] for key in T2I_KEYS}


def query_retrieval(model: nn.Module, encoding: SplitEncoding, queries: CaptionChoice, rewriter: str | None,
                    batch_size: int = 256) -> dict[str, Any]:
    """``raw``: T2I R@1/5/10 and median rank of the queries; with ``rewriter``, ``rewritten``: the same with each
    query replaced by its rewrite; counts ``num_queries``, ``num_rewritten``, ``num_fallback``, ``num_images``."""
    raw, rewritten, owners, fallback = [], [], [], 0
    for index, (image_id, captions) in enumerate(zip(encoding.image_ids, encoding.captions, strict=True)):
        rewrites = rewrites_by_query(captions, rewriter) if rewriter else {}
        for k, caption in enumerate(captions):
            if queries.matches(caption):
                rewrite = rewrites.get(query_id(image_id, k))
                fallback += rewrite is None
                raw.append(caption.text)
                rewritten.append(caption.text if rewrite is None else rewrite)
                owners.append(index)
    if not raw:
        raise VLForgeError(f"{encoding.name}: hard-query retrieval needs queries with {queries.describe()}; "
                           "there are none")
    owner_index = torch.tensor(owners)
    result: dict[str, Any] = {"raw": _t2i(model, encoding, raw, owner_index, batch_size), "num_queries": len(raw),
                              "num_images": len(encoding.image_ids)}
    if rewriter:
        result.update(rewriter=rewriter, rewritten=_t2i(model, encoding, rewritten, owner_index, batch_size),
                      num_rewritten=len(raw) - fallback, num_fallback=fallback)
    return result
