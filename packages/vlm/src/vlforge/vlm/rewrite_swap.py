"""Query rewriting in CLIP fine-tuning (query-rewriter paper §3.5: "during CLIP fine-tuning, we freeze the rewriter
and randomly perform query rewriting with probability p"; p = 0.6 in §4.1.3).

The rewriter is frozen, so its rewrites are computed once beforehand (``vlforge-rewriter predict`` over the training
split) and read from the store here, never generated in the training step. A drawn training caption that has a
stored rewrite by ``rewriter`` (matched by its text, :func:`vlforge.common.rewrites.rewrites_by_text`) is replaced
by that rewrite with probability ``probability``; a caption without one trains as drawn. Matching is on the drawn
text, so a choice that cuts its captions (``max_sentences``, ``shear_tokens``) finds no rewrite for a cut caption.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from vlforge.common.errors import VLForgeError
from vlforge.common.records import ImageRecord
from vlforge.common.rewrites import rewrites_by_text


@dataclass(frozen=True)
class RewriteSwap:
    """Replace a drawn caption by ``rewriter``'s stored rewrite with probability ``probability``."""

    rewriter: str
    probability: float = 0.6

    def __post_init__(self) -> None:
        if not self.rewriter:
            raise VLForgeError("rewrite: name the rewriter whose stored rewrites replace training captions")
        if not 0.0 <= self.probability <= 1.0:
            raise VLForgeError(f"rewrite: probability must be in [0, 1], got {self.probability}")

    def apply(self, record: ImageRecord, text: str, rng: random.Random) -> tuple[str, bool]:
        """(the text to train with, whether it was replaced)."""
        rewrite = rewrites_by_text(record, self.rewriter).get(text)
        if rewrite is None or not rng.random() < self.probability:
            return text, False
        return rewrite, True

    def require_rewrites(self, records: Iterable[ImageRecord], where: str) -> None:
        """A VLForgeError when no record has a rewrite by ``rewriter`` (the option would silently do nothing)."""
        if not any(rewrites_by_text(record, self.rewriter) for record in records):
            raise VLForgeError(f"rewrite: no caption of {where} has a stored rewrite by {self.rewriter!r}; run "
                               "`vlforge-rewriter predict` on that split first")


def rewrite_swap(settings: dict) -> RewriteSwap:
    """A :class:`RewriteSwap` from config keys (``rewriter``, ``probability``); unknown keys are a one-line error."""
    unknown = sorted(set(settings) - {"rewriter", "probability"})
    if unknown:
        raise VLForgeError(f"rewrite: unknown key {unknown[0]!r} (rewriter, probability)")
    return RewriteSwap(**settings)
