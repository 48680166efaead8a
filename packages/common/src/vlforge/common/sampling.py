"""Which captions an image trains with: caption mixtures over the store's sources and kinds.

Shared by the contrastive (CLIP / SigLIP / BLIP) and the captioner training stages. A mixture is a list of
:class:`CaptionChoice` — a (source, kind) filter with a weight and two load-time text transforms:

- ``max_sentences=k``: train on a random 1..k sentences of the caption (the semantic-guidance paper samples one to
  ten sentences of its long captions);
- ``shear_tokens=T``: text shearing (the MLLM-augmented paper, Sec. 3.4): keep the first complete sentence within
  the first T tokens, T usually the mean raw-caption length (``vlforge.common.text.mean_caption_tokens``).

Both cut sentences with ``sentence_splitter`` ("regex" for ShapesWorld, "pysbd" for real captions; data modules
resolve "auto" from the store, see ``vlforge.common.sentences.resolve_splitter``).

Two modes:

- ``weighted``: each time an image is drawn, a choice is picked with probability proportional to its weight among
  the choices the record has a caption for, then one of its matching captions uniformly (e.g. 50/50 short synthetic
  / alt-text, the caption-format paper's best CLIP mix);
- ``per_caption``: one training pair per choice (the MLLM-augmented protocol: raw + K synthetic captions each make a
  pair). The dataset has k = len(choices) slots per image; slot j uses choice j (a record without a caption for it
  falls back to a weighted draw). Training then runs 1/k of the raw-only epochs (``epoch_scale``) — or, equivalently,
  the same number of optimizer steps — so the cost stays that of raw-only training.

Negative captions (kind "negative") never match a choice unless it asks for kind "negative"; ``negatives`` draws
them for NegCLIP-style hard negatives.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from vlforge.common.errors import VLForgeError
from vlforge.common.records import CAPTION_KINDS, Caption, ImageRecord
from vlforge.common.sentences import resolve_splitter
from vlforge.common.text import sample_sentences, shear

SAMPLING_MODES = ("weighted", "per_caption")


@dataclass(frozen=True)
class CaptionChoice:
    """Captions of ``source`` (None: any) and ``kind`` (None: any but "negative"), drawn with ``weight``."""

    source: str | None = None
    kind: str | None = None
    weight: float = 1.0
    max_sentences: int | None = None
    shear_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.kind is not None and self.kind not in CAPTION_KINDS:
            raise VLForgeError(f"caption choice kind {self.kind!r} is not one of {', '.join(CAPTION_KINDS)}")
        if not self.weight > 0:
            raise VLForgeError(f"caption choice {self.describe()} needs a positive weight, got {self.weight}")
        for name in ("max_sentences", "shear_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise VLForgeError(f"caption choice {self.describe()}: {name} must be >= 1, got {value}")

    def describe(self) -> str:
        return f"source={self.source or '*'} kind={self.kind or '*'}"

    def matches(self, caption: Caption) -> bool:
        """Empty captions (a captioner that produced nothing is stored as "") never train."""
        if not caption.text.strip() or (self.kind is None and caption.kind == "negative"):
            return False
        return ((self.source is None or caption.source == self.source)
                and (self.kind is None or caption.kind == self.kind))


class CaptionSampler:
    """Draws the training text of a record from a caption mixture (see the module docstring)."""

    def __init__(self, choices: Sequence[CaptionChoice | dict[str, Any]], mode: str = "weighted",
                 tokenizer: Any = None, sentence_splitter: str = "regex") -> None:
        if mode not in SAMPLING_MODES:
            raise VLForgeError(f"caption sampling mode {mode!r} is not one of {', '.join(SAMPLING_MODES)}")
        if not choices:
            raise VLForgeError("a caption mixture needs at least one choice")
        self.choices = [c if isinstance(c, CaptionChoice) else _choice_from_dict(c) for c in choices]
        self.mode = mode
        self.tokenizer = tokenizer
        self.sentence_splitter = resolve_splitter(sentence_splitter)

    @property
    def pairs_per_image(self) -> int:
        """k: dataset slots per image (1 when weighted, one per choice when per_caption)."""
        return len(self.choices) if self.mode == "per_caption" else 1

    @property
    def epoch_scale(self) -> float:
        """1/k: the fraction of raw-only epochs that keeps the training cost equal."""
        return 1.0 / self.pairs_per_image

    def text_for(self, record: ImageRecord, rng: random.Random, slot: int = 0) -> str | None:
        """The text this record trains with in dataset slot ``slot`` (None when no caption matches any choice)."""
        present = [(c, [cap for cap in record.captions if c.matches(cap)]) for c in self.choices]
        if self.mode == "per_caption":
            choice, captions = present[slot % len(present)]
            if captions:
                return self._prepare(rng.choice(captions).text, choice, rng)
        present = [(c, caps) for c, caps in present if caps]
        if not present:
            return None
        choice, captions = rng.choices(present, weights=[c.weight for c, _ in present])[0]
        return self._prepare(rng.choice(captions).text, choice, rng)

    def _prepare(self, text: str, choice: CaptionChoice, rng: random.Random) -> str:
        if choice.max_sentences is not None:
            text = sample_sentences(text, choice.max_sentences, rng, splitter=self.sentence_splitter)
        if choice.shear_tokens is not None:
            text = shear(text, choice.shear_tokens, self.tokenizer, splitter=self.sentence_splitter)
        return text

    def describe(self) -> list[dict[str, Any]]:
        return [asdict(c) for c in self.choices]

    def require_a_match(self, records: Iterable[ImageRecord], where: str) -> None:
        """A VLForgeError when no caption of ``records`` matches any choice: such a mixture would "train" on
        nothing (every item skipped) and exit 0. Stops at the first match, so a usable store costs one read."""
        for record in records:
            if any(choice.matches(caption) for caption in record.captions for choice in self.choices):
                return
        mixture = "; ".join(c.describe() for c in self.choices)
        raise VLForgeError(f"the caption mixture [{mixture}] matches no caption of {where}: nothing would train; "
                           "check the sources and kinds (`vlforge-store stats`)")


def negatives(record: ImageRecord, rng: random.Random, count: int) -> list[str]:
    """Up to ``count`` distinct negative captions of the record (kind "negative"), in random order."""
    texts = sorted({c.text for c in record.captions if c.kind == "negative"})
    rng.shuffle(texts)
    return texts[:count]


def _choice_from_dict(d: dict[str, Any]) -> CaptionChoice:
    unknown = set(d) - {"source", "kind", "weight", "max_sentences", "shear_tokens"}
    if unknown:
        raise VLForgeError(f"caption choice has unknown keys {sorted(unknown)}")
    return CaptionChoice(**d)
