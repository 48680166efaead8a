"""Critic-rewrite of stored captions (#12 item 6; paper §4.2): decompose each caption into atomic sentences, score
every sentence against its image with the critic, rewrite the caption from the verdicts (the model-free
drop-inconsistent baseline), and wrap the result as a caption of ``<source>+critic`` with its provenance (the
original caption, the critic and its checkpoint, the rewriter) and the per-sentence verdicts (and critiques) in
``scores["critic_sentences"]``.

Bad input: an empty caption has no sentences and is stored as ""; a caption of more than ``max_sentences``
sentences is cut to its first ``max_sentences`` (the cut sentences are not checked and not kept; counted in
``sentences_cut``); an unscored sentence is kept and recorded as "unscored".
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
from vlforge.critic.scoring import SentenceScore, score_sentences

CRITIC_SUFFIX = "+critic"
REWRITERS = ("drop_inconsistent",)
VERDICT_NAMES = {True: "consistent", False: "inconsistent", None: "unscored"}
COUNTS = ("images", "sentences", "consistent", "inconsistent", "unscored", "captions_cut", "sentences_cut",
          "empty_captions")


def critic_source(source: str) -> str:
    """The caption source critic-rewrite writes for ``source``."""
    return f"{source}{CRITIC_SUFFIX}"


@dataclass
class CriticRewrite:
    """A critic model and how it checks captions of ``source`` (of ``kind``, or the first of any kind)."""

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
        pairs = [(image, s) for _, image, _, sentences, _ in plans for s in sentences]
        scores = score_sentences(self.model, self.processor, [p[0] for p in pairs], [p[1] for p in pairs], self.mode,
                                 self.instruction, self.prompt_style, self.decoding, self.batch_size) if pairs else []
        out, at = {}, 0
        for record, _, original, sentences, cut in plans:
            mine = scores[at:at + len(sentences)]
            at += len(sentences)
            counts["images"] += 1
            counts["sentences"] += len(sentences)
            for score in mine:
                counts[VERDICT_NAMES[score.verdict]] += 1
            out[record.image_id] = [self.caption(original, sentences, mine, cut)]
        return out, counts

    def caption(self, original: Caption, sentences: list[str], scores: list[SentenceScore], cut: int) -> Caption:
        text = drop_inconsistent(sentences, [s.verdict for s in scores])
        provenance = {**self.provenance, "original_caption": original.text, "original_source": original.source,
                      "rewriter": "drop_inconsistent", "scoring": self.mode, "instruction": self.instruction,
                      "sentences_cut": cut}
        caption = generated_caption(text, critic_source(self.source), original.kind, provenance,
                                    f"vlforge-critic {_critic.__version__}")
        caption.scores["critic_sentences"] = [
            {"sentence": s, "verdict": VERDICT_NAMES[score.verdict], "p_consistent": score.p_consistent,
             "critique": score.critique} for s, score in zip(sentences, scores, strict=True)]
        return caption
