"""Captioner training examples read from the caption store (model-agnostic: images and strings).

- ``SFTCaptionDataset``: one example per (image, format) of a split whose target caption exists and is not empty:
  ``{"key", "image", "instruction", "response"}`` (no ``image`` with ``with_images=False``: text-only SFT, e.g. an
  alt-text fusion prompt rewritten into the dense caption by a causal LM); the target is the image's caption of the
  format's target kind from ``source`` (ground truth "gt" by default). Alt-text fusion prompts carry the
  image's alt-text.
- ``PreferencePairDataset``: ``{"key", "image", "instruction", "chosen", "rejected"}`` with the ``chosen_kind`` gt
  caption as chosen and as rejected, by ``rejected``:
  ``"negative"``: the store's perturbed negatives of that positive (ShapesWorld's attribute / relation / object
  swaps; each negative is paired with the positive it was made from);
  ``"hallucinated"``: the chosen caption with colour/shape words swapped (:func:`perturb.hallucinate`);
  ``"source:<name>"``: a captioner's own caption of the image, the one with the highest ``scores[score_key]``
  (e.g. CHAIR_i against the scene graph, written by ``vlforge-captioner score``: the paper's keep-the-worst
  selection); with ``score_above``, only captions whose score is above it are candidates (``score_above: 0`` with
  CHAIR_i: hallucinating samples only; an image without one gives no pair), and a caption of the source without
  the score is an error naming its record.

Both index the split once at construction (small integer tuples, cheap to send to workers); the store is opened
lazily in each process. Empty captions are never used.
"""

from __future__ import annotations

import os
import random
from typing import Any

from torch.utils.data import Dataset

from vlforge.captioner.formats import CaptionFormat, load_format
from vlforge.captioner.perturb import hallucinate
from vlforge.common.errors import VLForgeError
from vlforge.common.records import ImageRecord
from vlforge.common.store import CaptionDataset

REJECTED_MODES = ("negative", "hallucinated")
SOURCE_PREFIX = "source:"


def _alt_text(record: ImageRecord) -> str | None:
    texts = [c.text for c in record.captions_by(source="alt_text") if c.text.strip()]
    return texts[0] if texts else None


class SFTCaptionDataset(Dataset):
    """(image, format instruction, target caption) examples of one split."""

    def __init__(self, store_path: str | os.PathLike, split: str = "seed",
                 targets: dict[str, str] | None = None, source: str = "gt", limit: int | None = None,
                 with_images: bool = True) -> None:
        self.images = CaptionDataset(store_path, split=split, meta=False)  # images and captions only
        self.with_images = with_images
        targets = targets or {"dense": "dense"}
        self.formats: dict[str, CaptionFormat] = {name: load_format(name) for name in targets}
        self.index: list[tuple[int, str, int]] = []  # (record ordinal, format name, caption position)
        count = len(self.images) if limit is None else min(limit, len(self.images))
        for ordinal in range(count):
            record = self.images.record(ordinal)
            for name, kind in targets.items():
                if self.formats[name].needs_alt_text and _alt_text(record) is None:
                    continue
                for position, caption in enumerate(record.captions):
                    if caption.source == source and caption.kind == kind and caption.text.strip():
                        self.index.append((ordinal, name, position))
                        break
        if not self.index:
            raise VLForgeError(f"split {split!r} of store {os.fspath(store_path)!r} has no non-empty {source!r} "
                               f"captions of kinds {sorted(set(targets.values()))}")

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, Any]:
        ordinal, name, position = self.index[i]
        fmt = self.formats[name]
        example: dict[str, Any] = {}
        if self.with_images:
            example["image"], record = self.images[ordinal]
        else:
            record = self.images.record(ordinal)
        return {"key": f"{record.image_id}/{name}", **example,
                "instruction": fmt.prompt(_alt_text(record) if fmt.needs_alt_text else None),
                "response": record.captions[position].text}


class PreferencePairDataset(Dataset):
    """(image, instruction, chosen, rejected) pairs of one split."""

    def __init__(self, store_path: str | os.PathLike, split: str = "pref", chosen_kind: str = "descriptive",
                 rejected: str = "negative", score_key: str = "chair_i", seed: int = 0,
                 limit: int | None = None, score_above: float | None = None) -> None:
        if rejected not in REJECTED_MODES and not rejected.startswith(SOURCE_PREFIX):
            raise VLForgeError(f"rejected {rejected!r} is not one of {', '.join(REJECTED_MODES)} or 'source:<name>'")
        if score_above is not None and not rejected.startswith(SOURCE_PREFIX):
            raise VLForgeError(f"score_above selects among a source's scored captions; rejected is {rejected!r}")
        self.images = CaptionDataset(store_path, split=split, meta=False)  # images and captions only
        self.format = load_format(chosen_kind) if chosen_kind in ("short", "descriptive", "dense") else None
        self.instruction = self.format.prompt() if self.format else "Describe the image."
        self.pairs: list[tuple[int, str, str]] = []  # (record ordinal, chosen text, rejected text)
        count = len(self.images) if limit is None else min(limit, len(self.images))
        for ordinal in range(count):
            record = self.images.record(ordinal)
            rng = random.Random(f"{seed}/{record.image_id}")
            for chosen in record.captions_by(source="gt", kind=chosen_kind):
                if not chosen.text.strip():
                    continue
                for text in self._rejected_for(record, chosen.text, rejected, score_key, rng, score_above):
                    if text.strip() and text != chosen.text:
                        self.pairs.append((ordinal, chosen.text, text))
        if not self.pairs:
            raise VLForgeError(f"split {split!r} of store {os.fspath(store_path)!r} gives no preference pairs for "
                               f"chosen kind {chosen_kind!r} and rejected {rejected!r}")

    @staticmethod
    def _rejected_for(record: ImageRecord, chosen: str, mode: str, score_key: str,
                      rng: random.Random, score_above: float | None = None) -> list[str]:
        if mode == "negative":
            return [c.text for c in record.captions_by(source="gt", kind="negative")
                    if c.provenance.get("positive_text") == chosen]
        if mode == "hallucinated":
            text = hallucinate(chosen, rng)
            return [text] if text is not None else []
        own = [c for c in record.captions_by(source=mode[len(SOURCE_PREFIX):]) if c.text.strip()]
        if score_above is not None:
            unscored = next((c for c in own if score_key not in c.scores), None)
            if unscored is not None:
                raise VLForgeError(f"record {record.image_id!r}: a caption of source {unscored.source!r} has no score "
                                   f"{score_key!r} (vlforge-captioner score writes chair_i)")
            own = [c for c in own if float(c.scores[score_key]) > score_above]
        if not own:
            return []
        return [max(own, key=lambda c: float(c.scores.get(score_key, float("-inf")))).text]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        ordinal, chosen, rejected = self.pairs[i]
        image, record = self.images[ordinal]
        return {"key": f"{record.image_id}/{i}", "image": image, "instruction": self.instruction,
                "chosen": chosen, "rejected": rejected}
