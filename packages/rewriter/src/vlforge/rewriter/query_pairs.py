"""Query-pair construction with retriever feedback (query-rewriter paper §3.1; the paper's appendix A.1).

1. Every query of a store split (ShapesWorld: source "gt", kind "query") is ranked by the frozen retriever
   against the split's images: rank ≤ ``high_quality_rank`` is high quality, the rest low quality.
2. Low-quality queries go through the challenge-response loop: recall the top ``recall_k`` wrong images for the
   best text so far, let the agent compare them with the right image and propose rewrites, re-test every
   rewrite, up to ``max_turns`` turns or until ``num_candidates`` rewrites are high quality.
3. High-quality queries are blurred (``blur.blur_query``, or the LM agent's ``blur``); a blurred query the
   retriever scores lower than the original becomes a low-quality query whose candidates include the original,
   and it runs the same loop (the agent is shown the blurred query, never the original).
4. Rewrites whose MiniLM similarity to the low-quality query is below ``min_similarity`` are dropped.
5. D_SFT: low-quality query → its best-scoring rewrite, when that rewrite is high quality. D_PRO: query → up to
   ``num_candidates`` rewrites ranked by retriever score (at least 2).

Bad inputs are skipped and counted with the query id: the right image missing from the retriever's cache, an
empty rewrite, a rewrite longer than ``max_rewrite_words``, a NaN score, a query the agent cannot rewrite.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from vlforge.common.store import CaptionStore
from vlforge.rewriter.agents import QueryCase, RewriteAgent
from vlforge.rewriter.blur import blur_query
from vlforge.rewriter.retriever import ImageIndex, Retriever


@dataclass
class QueryPairConfig:
    query_source: str = "gt"
    query_kind: str = "query"
    high_quality_rank: int = 1
    recall_k: int = 5
    max_turns: int = 3
    num_candidates: int = 4
    min_similarity: float = 0.3
    max_rewrite_words: int = 40
    blur: bool = True
    max_queries: int | None = None


@dataclass
class Candidate:
    text: str
    score: float
    rank: int
    similarity: float
    turn: int


@dataclass
class QueryPairRow:
    """One low-quality query with its scored rewrites, best first. ``origin``: "low" (a low-quality query of the
    store) or "blurred" (made from the high-quality query ``original``)."""

    query_id: str
    image_id: str
    query: str
    query_score: float
    query_rank: int
    origin: str
    candidates: list[Candidate]
    original: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QueryPairRow:
        return cls(**{**d, "candidates": [Candidate(**c) for c in d["candidates"]]})


@dataclass
class QueryPairs:
    sft: list[QueryPairRow] = field(default_factory=list)
    pro: list[QueryPairRow] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (query id, reason)

    def skip(self, query_id: str, reason: str) -> None:
        self.counts[f"skipped_{reason}"] += 1
        self.skipped.append((query_id, reason))

    def summary(self) -> dict[str, Any]:
        return {"counts": dict(sorted(self.counts.items())), "d_sft": len(self.sft), "d_pro": len(self.pro),
                "skipped": [{"query_id": q, "reason": r} for q, r in self.skipped]}


def _query_cases(store: CaptionStore, split: str, index: ImageIndex, config: QueryPairConfig,
                 pairs: QueryPairs) -> list[QueryCase]:
    cases = []
    for record in store.iter_records(split=split):
        for k, caption in enumerate(record.captions):
            if caption.source != config.query_source or caption.kind != config.query_kind:
                continue
            query_id = f"{record.image_id}#{k}"
            if record.image_id not in index.position:
                pairs.skip(query_id, "image_not_in_cache")
                continue
            if not caption.text.strip():
                pairs.skip(query_id, "empty_query")
                continue
            cases.append(QueryCase(query_id, caption.text, record, caption.provenance.get("target")))
            if config.max_queries is not None and len(cases) >= config.max_queries:
                return cases
    return cases


class _Loop:
    """The challenge-response loop for one split (shared state: retriever, index, store, agent, similarity)."""

    def __init__(self, retriever: Retriever, index: ImageIndex, store: CaptionStore, agent: RewriteAgent,
                 similarity: Callable[[list[str], list[str]], list[float]], config: QueryPairConfig,
                 pairs: QueryPairs) -> None:
        self.retriever, self.index, self.store, self.agent = retriever, index, store, agent
        self.similarity, self.config, self.pairs = similarity, config, pairs

    def _valid(self, case: QueryCase, texts: list[str]) -> list[str]:
        kept = []
        for text in texts:
            text = " ".join(text.split())
            if not text:
                self.pairs.skip(case.query_id, "empty_rewrite")
            elif len(text.split()) > self.config.max_rewrite_words:
                self.pairs.skip(case.query_id, "rewrite_too_long")
            else:
                kept.append(text)
        return kept

    def _score(self, case: QueryCase, texts: list[str], turn: int, low_text: str) -> list[Candidate]:
        if not texts:
            return []
        ranks, scores = self.retriever.ranks(texts, self.index, [case.record.image_id] * len(texts))
        similarities = self.similarity([low_text] * len(texts), texts)
        scored = []
        for text, rank, score, sim in zip(texts, ranks.tolist(), scores.tolist(), similarities):
            if not math.isfinite(score):
                self.pairs.skip(case.query_id, "nan_score")
            elif sim < self.config.min_similarity:
                self.pairs.counts["filtered_low_similarity"] += 1
            else:
                scored.append(Candidate(text, score, rank, float(sim), turn))
        return scored

    def run(self, case: QueryCase, low_text: str, prior: list[str]) -> list[Candidate]:
        """Scored rewrites of ``low_text`` (about ``case``'s image), best first."""
        candidates: dict[str, Candidate] = {c.text: c for c in self._score(case, prior, 0, low_text)}
        best_text = low_text
        for turn in range(1, self.config.max_turns + 1):
            recalled = self.retriever.top_images(best_text, self.index, self.config.recall_k + 1)
            wrong = [self.store.get(i) for i in recalled if i != case.record.image_id][:self.config.recall_k]
            proposals = self._valid(case, self.agent.propose(dataclasses.replace(case, text=low_text), wrong, turn))
            self.pairs.counts["agent_proposals"] += len(proposals)
            new = [t for t in dict.fromkeys(proposals) if t not in candidates and t != low_text]
            candidates.update({c.text: c for c in self._score(case, new, turn, low_text)})
            if candidates:
                best_text = max(candidates.values(), key=lambda c: c.score).text
            good = sum(c.rank <= self.config.high_quality_rank for c in candidates.values())
            if good >= self.config.num_candidates:
                break
        return sorted(candidates.values(), key=lambda c: -c.score)

    def add(self, case: QueryCase, text: str, score: float, rank: int, origin: str, ranked: list[Candidate],
            original: str | None = None) -> None:
        if not ranked:
            self.pairs.skip(case.query_id, "no_rewrite")
            return
        row = QueryPairRow(case.query_id, case.record.image_id, text, score, rank, origin,
                           ranked[:self.config.num_candidates], original)
        if ranked[0].rank <= self.config.high_quality_rank:
            self.pairs.sft.append(row)
        else:
            self.pairs.counts["no_high_quality_rewrite"] += 1
        if len(row.candidates) >= 2:
            self.pairs.pro.append(row)


def make_query_pairs(retriever: Retriever, index: ImageIndex, store: CaptionStore, split: str,
                     agent: RewriteAgent, similarity: Callable[[list[str], list[str]], list[float]],
                     config: QueryPairConfig | None = None,
                     progress: Callable[[int, int], None] | None = None,
                     blur: Callable[[str, str], str | None] | None = None) -> QueryPairs:
    """D_SFT and D_PRO of one split (see the module docstring). ``similarity(a, b)`` gives the text similarity of
    each pair (MiniLM's :meth:`SentenceSimilarity.pairwise`); ``progress(done, total)`` is called per query;
    ``blur(query_id, query)`` makes a high-quality query vaguer (default: the rule-based ``blur_query``)."""
    config = config or QueryPairConfig()
    pairs = QueryPairs()
    cases = _query_cases(store, split, index, config, pairs)
    pairs.counts["queries"] = len(cases)
    if not cases:
        return pairs
    ranks, scores = retriever.ranks([c.text for c in cases], index, [c.record.image_id for c in cases])
    loop = _Loop(retriever, index, store, agent, lambda a, b: [float(s) for s in similarity(a, b)], config, pairs)
    for done, (case, rank, score) in enumerate(zip(cases, ranks.tolist(), scores.tolist()), start=1):
        if not math.isfinite(score):
            pairs.skip(case.query_id, "nan_score")
        elif rank > config.high_quality_rank:
            pairs.counts["low_quality"] += 1
            loop.add(case, case.text, score, rank, "low", loop.run(case, case.text, []))
        else:
            pairs.counts["high_quality"] += 1
            if config.blur:
                _blurred(loop, case, score, blur or (lambda _, text: blur_query(text)))
        if progress is not None:
            progress(done, len(cases))
    return pairs


def _blurred(loop: _Loop, case: QueryCase, original_score: float, blur: Callable[[str, str], str | None]) -> None:
    blurred = blur(case.query_id, case.text)
    if blurred is None:
        loop.pairs.skip(case.query_id, "cannot_blur")
        return
    ranks, scores = loop.retriever.ranks([blurred], loop.index, [case.record.image_id])
    if not scores[0].item() < original_score:
        loop.pairs.counts["blur_not_worse"] += 1
        return
    loop.pairs.counts["blurred"] += 1
    ranked = loop.run(case, blurred, [case.text])
    loop.add(case, blurred, scores[0].item(), int(ranks[0]), "blurred", ranked, original=case.text)
