"""A challenge-response agent that sees images only through a trained captioner's descriptions (query-rewriter
paper §3.1, Fig. 2 a.2, with the MLLM's look at the images replaced by captions a vlforge captioner wrote into the
store, e.g. ``vlforge-captioner predict`` over the split). It never reads scene graphs, so on ShapesWorld it sits
below :class:`~vlforge.rewriter.agents.SceneGraphOracleAgent`, the upper bound.

Per query, from the right image's description (captions of ``source`` / ``kind``), split into sentences:

- the anchor: the sentence most similar to the query (MiniLM, ``similarity``), standing for the object the query
  names in the captioner's words ("a red circle" for "crimson disc");
- the other sentences, ranked by how many of the recalled wrong images' descriptions lack them (a sentence is in
  a description when all its words are; ties keep the description's order).

Turn t proposes the anchor with the t−1 most distinguishing sentences, the anchor with each of the t most
distinguishing sentences alone, and the whole description. An image without a description gets no proposal (the
loop counts the query as ``no_rewrite``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from vlforge.common.records import ImageRecord
from vlforge.common.text import split_sentences
from vlforge.rewriter.agents import QueryCase

WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def _words(text: str) -> set[str]:
    return set(WORD.findall(text.lower()))


def stored_description(record: ImageRecord, source: str, kind: str | None = None) -> str | None:
    """The first non-empty caption of ``source`` (and ``kind``) of a record: a captioner's description of it."""
    captions = [c.text for c in record.captions_by(source=source, kind=kind) if c.text.strip()]
    return captions[0] if captions else None


class CaptionerDescriptionAgent:
    """Rewrites from a captioner's descriptions of the right and the wrongly recalled images (module docstring)."""

    name = "captioner_descriptions"

    def __init__(self, source: str, similarity: Callable[[list[str], list[str]], list[float]],
                 kind: str | None = None) -> None:
        self.source, self.kind, self.similarity = source, kind, similarity

    def description(self, record: ImageRecord) -> str | None:
        return stored_description(record, self.source, self.kind)

    def propose(self, case: QueryCase, wrong: list[ImageRecord], turn: int) -> list[str]:
        description = self.description(case.record)
        sentences = [s.strip() for s in split_sentences(description or "") if s.strip()]
        if not sentences:
            return []
        scores = self.similarity([case.text] * len(sentences), sentences)
        anchor = max(range(len(sentences)), key=lambda i: scores[i])
        wrong_words = [_words(d) for d in (self.description(r) for r in wrong) if d]
        others = [s for i, s in enumerate(sentences) if i != anchor]
        ranked = sorted(others, key=lambda s: -sum(not _words(s) <= words for words in wrong_words))
        head = sentences[anchor]
        proposals = [" ".join([head, *ranked[:turn - 1]])]
        proposals += [f"{head} {s}" for s in ranked[:turn]]
        proposals.append(" ".join(sentences))
        return list(dict.fromkeys(proposals))
