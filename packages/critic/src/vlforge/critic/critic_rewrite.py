"""Critic-rewrite of stored captions (#12 item 6; paper §4.2): decompose each caption into atomic sentences, score
every sentence against its image with the critic (a trained one, or the scene-graph critic when ``model`` is None),
rewrite the caption from the verdicts and critiques (a ``GenerativeRewriter``: Fig. 15; without one the model-free
drop-inconsistent baseline), and wrap the result as a caption of ``target`` (default ``<source>+critic``) with its
provenance (the original caption, the critic and its checkpoint, the rewriter) and the per-sentence verdicts (and
critiques) in ``scores["critic_sentences"]``.

Bad input: an empty caption has no sentences and is stored as ""; a caption of more than ``max_sentences``
sentences is cut to its first ``max_sentences`` (the cut sentences are not checked and not kept; counted in
``sentences_cut``); an unscored sentence is kept and recorded as "unscored"; a rewrite the model left empty falls
back to drop-inconsistent (``rewrite_empty``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

import vlforge.critic as _critic
from vlforge.common.lm.generated_store import generated_caption
from vlforge.common.records import Caption, ImageRecord
from vlforge.critic.decompose import RuleBasedDecomposer
from vlforge.critic.rewrite import drop_inconsistent
from vlforge.critic.rewrite_generative import GenerativeRewriter
from vlforge.critic.scene_graph_critic import SCENE_GRAPH, scene_graph_scores
from vlforge.critic.scoring import SentenceScore, score_sentences

CRITIC_SUFFIX = "+critic"
VERDICT_NAMES = {True: "consistent", False: "inconsistent", None: "unscored"}
COUNTS = ("images", "sentences", "consistent", "inconsistent", "unscored", "captions_cut", "sentences_cut",
          "empty_captions", "rewritten", "rewrite_empty")


def critic_source(source: str) -> str:
    """The caption source critic-rewrite writes for ``source``."""
    return f"{source}{CRITIC_SUFFIX}"


@dataclass
class CriticRewrite:
    """A critic model (None: the scene-graph critic) and how it checks captions of ``source`` (of ``kind``, or the
    first of any kind); ``rewriter``: the generative rewrite (None: drop the inconsistent sentences)."""

    model: Any
    processor: Any
    source: str
    kind: str | None = None
    mode: str = "probability"
    instruction: str = "fig14"
    prompt_style: str = "chat"
    decoding: dict[str, Any] | None = None
    max_sentences: int = 20
    batch_size: int = 16
    splitter: str = "regex"
    provenance: dict[str, Any] = field(default_factory=dict)
    rewriter: GenerativeRewriter | None = None
    target: str | None = None

    def caption_of(self, record: ImageRecord) -> Caption | None:
        captions = record.captions_by(source=self.source, kind=self.kind)
        return captions[0] if captions else None

    def __call__(self, items: list[tuple[ImageRecord, Image.Image]]) -> tuple[dict[str, list[Caption]], Counter]:
        """The rewritten caption of every item (image id -> [Caption]) and the counts of :data:`COUNTS`."""
        counts: Counter[str] = Counter(dict.fromkeys(COUNTS, 0))
        decompose = RuleBasedDecomposer(self.splitter)
        plans = []
        for record, image in items:
            original = self.caption_of(record)
            sentences = decompose(original.text) if original is not None and original.text.strip() else []
            cut = max(0, len(sentences) - self.max_sentences)
            counts["captions_cut"] += cut > 0
            counts["sentences_cut"] += cut
            counts["empty_captions"] += not sentences
            plans.append((record, image, original, sentences[:self.max_sentences], cut))
        scores = self.score([(record, image, sentences) for record, image, _, sentences, _ in plans])
        texts = self.rewrite([(original.text if not cut else " ".join(sentences), sentences, mine)
                              for (_, _, original, sentences, cut), mine in zip(plans, scores, strict=True)], counts)
        out = {}
        for (record, _, original, sentences, cut), mine, text in zip(plans, scores, texts, strict=True):
            counts["images"] += 1
            counts["sentences"] += len(sentences)
            for score in mine:
                counts[VERDICT_NAMES[score.verdict]] += 1
            out[record.image_id] = [self.caption(original, text, sentences, mine, cut)]
        return out, counts

    def score(self, plans: list[tuple[ImageRecord, Image.Image, list[str]]]) -> list[list[SentenceScore]]:
        """Each plan's sentence scores, from the critic model (batched over all sentences) or the scene graph."""
        if self.model is None:
            return [scene_graph_scores(record, sentences) for record, _, sentences in plans]
        pairs = [(image, s) for _, image, sentences in plans for s in sentences]
        flat = score_sentences(self.model, self.processor, [p[0] for p in pairs], [p[1] for p in pairs], self.mode,
                               self.instruction, self.prompt_style, self.decoding, self.batch_size) if pairs else []
        out, at = [], 0
        for _, _, sentences in plans:
            out.append(flat[at:at + len(sentences)])
            at += len(sentences)
        return out

    def rewrite(self, plans: list[tuple[str, list[str], list[SentenceScore]]], counts: Counter) -> list[str]:
        """Each (caption text, its sentences, their scores) rewritten: by the rewriter when a sentence is judged
        inconsistent (an empty output falls back to drop-inconsistent), else by dropping the inconsistent
        sentences (a cut caption is its kept sentences)."""
        dropped = [drop_inconsistent(sentences, [s.verdict for s in scores]) for _, sentences, scores in plans]
        if self.rewriter is None:
            return dropped
        asked = [i for i, (_, _, scores) in enumerate(plans) if any(s.verdict is False for s in scores)]
        texts = self.rewriter.rewrite_batch([plans[i][0] for i in asked], [plans[i][1] for i in asked],
                                            [[s.verdict for s in plans[i][2]] for i in asked],
                                            [[s.critique for s in plans[i][2]] for i in asked])
        counts["rewritten"] += len(asked)
        for i, text in zip(asked, texts, strict=True):
            counts["rewrite_empty"] += text is None
            if text is not None:
                dropped[i] = text
        return dropped

    def caption(self, original: Caption, text: str, sentences: list[str], scores: list[SentenceScore],
                cut: int) -> Caption:
        provenance = {**self.provenance, "original_caption": original.text, "original_source": original.source,
                      "rewriter": "drop_inconsistent" if self.rewriter is None else "generative",
                      "scoring": SCENE_GRAPH if self.model is None else self.mode, "instruction": self.instruction,
                      "sentences_cut": cut}
        caption = generated_caption(text, self.target or critic_source(self.source), original.kind, provenance,
                                    f"vlforge-critic {_critic.__version__}")
        caption.scores["critic_sentences"] = [
            {"sentence": s, "verdict": VERDICT_NAMES[score.verdict], "p_consistent": score.p_consistent,
             "critique": score.critique} for s, score in zip(sentences, scores, strict=True)]
        return caption
