"""Critic SFT examples (#12 item 3) as the plain dicts ``vlforge.common.lm``'s SFT collator takes:
``{"key", "image", "instruction", "response"}``.

Rows (image, sentence, critique, verdict) come from LLaVA conversation JSON files (``make-data``'s ``critic.json``
or any file of that shape, read by ``llava_format.read_llava_critic``) or straight from a ShapesWorld store split
(``shapes_critic_data.critic_examples`` of each record's scene graph with ``make-data``'s seeding, so the same
rows). Each row gives up to two examples: the critique (``critic_prompt`` -> the critique, when ``critiques``) and
the verdict alone (``verdict_prompt`` -> ``Verdict: ...``, when ``verdict_only``), which the fast scoring mode reads.
``describe_first`` / ``observe_first`` (store rows only): the critiques open with the image's description / state
what the image shows in each check before judging it (``critique.write_critique``); ``captioner_sources`` (store rows
only): a trained captioner's sentences judged against the scene graph are rows too.
A row whose critique has no verdict line gives no verdict example (counted in ``no_verdict``).

Decomposition examples (``DecompositionSFTDataset``, text only): a record's gt dense caption in a decomposition
prompt (``decompose_generative.decompose_prompt``) -> the record's atomic facts, one per line.

Rewrite examples (``RewriteSFTDataset``, text only): a record's corrupted gt dense caption with its sentences'
scene-graph critiques in a rewrite prompt -> the clean caption (``shapes_rewrite_data.rewrite_example``).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any

from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from vlforge.common.errors import VLForgeError
from vlforge.common.records import ImageRecord
from vlforge.common.store import CaptionStore
from vlforge.critic.decompose_generative import decompose_prompt
from vlforge.critic.llava_format import read_llava_critic
from vlforge.critic.prompts import critic_prompt, verdict_prompt
from vlforge.critic.rewrite_generative import SCOPES
from vlforge.critic.shapes_critic_data import critic_examples
from vlforge.critic.shapes_rewrite_data import rewrite_example, sentence_examples
from vlforge.critic.verdicts import verdict_line


@dataclass(frozen=True)
class CriticItem:
    """One training example: where its image is (a file, or a store's image id), its prompt and its target."""

    key: str
    image: str
    from_store: bool
    instruction: str
    response: str


def _items(key: str, image: str, from_store: bool, sentence: str, critique: str, consistent: bool | None,
           instruction: str, critiques: bool, verdict_only: bool) -> list[CriticItem]:
    items = []
    if critiques:
        items.append(CriticItem(f"{key}/critique", image, from_store, critic_prompt(sentence, instruction), critique))
    if verdict_only and consistent is not None:
        items.append(CriticItem(f"{key}/verdict", image, from_store, verdict_prompt(sentence, instruction),
                                verdict_line(consistent)))
    return items


class CriticSFTDataset(Dataset):
    """Critic examples from ``files`` (LLaVA JSON, images inside ``image_folder`` or each file's folder) and/or
    from ``store``'s ``split`` (at most its first ``limit`` records)."""

    def __init__(self, files: list[str] | None = None, store: str | None = None, split: str | None = None,
                 image_folder: str | None = None, instruction: str = "fig14", critiques: bool = True,
                 verdict_only: bool = True, limit: int | None = None, seed: int = 0,
                 describe_first: bool = False, observe_first: bool = False,
                 captioner_sources: list[str] | None = None) -> None:
        if not files and not (store and split):
            raise VLForgeError("critic data needs files (LLaVA JSON) or a store and a split")
        if not critiques and not verdict_only:
            raise VLForgeError("critic data: critiques and verdict_only are both off; nothing to train on")
        self.store_path = os.fspath(store) if store else None
        self.items: list[CriticItem] = []
        self.no_verdict = 0
        for path in files or []:
            for row in read_llava_critic(path, image_folder):
                self.no_verdict += row.consistent is None
                self.items += _items(row.row_id, str(row.image), False, row.sentence, row.critique, row.consistent,
                                     instruction, critiques, verdict_only)
        if store and split:
            with CaptionStore(store, readonly=True) as source:
                for number, record in enumerate(source.iter_records(split=split)):
                    if limit is not None and number >= limit:
                        break
                    if "scene_graph" not in record.meta or "atomic_facts" not in record.meta:
                        continue
                    rng = random.Random(f"critic/{seed}/{record.image_id}")
                    for k, ex in enumerate(critic_examples(record, rng, describe_first=describe_first,
                                                                   observe_first=observe_first,
                                                                   captioner_sources=captioner_sources or ())):
                        self.items += _items(f"{record.image_id}-{k}", record.image_id, True, ex.sentence,
                                             ex.critique, ex.consistent, instruction, critiques, verdict_only)
        if not self.items:
            raise VLForgeError(f"critic data: no examples in {files or []} {store or ''} {split or ''}".strip())
        self._store: CaptionStore | None = None

    def __len__(self) -> int:
        return len(self.items)

    def _image(self, item: CriticItem) -> Image.Image:
        if item.from_store:
            if self._store is None:
                self._store = CaptionStore(self.store_path, readonly=True)
            return self._store.load_image(self._store.get(item.image))
        try:
            with Image.open(item.image) as image:
                return image.convert("RGB")
        except (OSError, UnidentifiedImageError) as err:
            raise VLForgeError(f"example {item.key}: cannot read image {item.image} ({err})") from None

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.items[i]
        return {"key": item.key, "image": self._image(item), "instruction": item.instruction,
                "response": item.response}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_store": None}


def gt_dense_caption(record: ImageRecord) -> str:
    """The record's gt dense caption; a one-line error naming the record when it has none."""
    dense = record.captions_by(source="gt", kind="dense")
    if not dense:
        raise VLForgeError(f"record {record.image_id}: no gt dense caption")
    return dense[0].text


class DecompositionSFTDataset(Dataset):
    """(gt dense caption -> atomic facts, one per line) examples of ``store``'s ``split`` (at most its first
    ``limit`` records), asked with the decomposition prompt named ``prompt``; records without atomic facts in
    their meta are counted in ``skipped``."""

    def __init__(self, store: str, split: str, prompt: str = "short", limit: int | None = None) -> None:
        self.examples: list[dict[str, str]] = []
        self.skipped = 0
        with CaptionStore(store, readonly=True) as source:
            for number, record in enumerate(source.iter_records(split=split)):
                if limit is not None and number >= limit:
                    break
                if not record.meta.get("atomic_facts"):
                    self.skipped += 1
                    continue
                self.examples.append({"key": record.image_id,
                                      "instruction": decompose_prompt(gt_dense_caption(record), prompt),
                                      "response": "\n".join(record.meta["atomic_facts"])})
        if not self.examples:
            raise VLForgeError(f"decomposition data: no record of store {store} split {split!r} has atomic facts")

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict[str, str]:
        return self.examples[i]


class RewriteSFTDataset(Dataset):
    """(corrupted caption + critiques -> clean caption) examples of ``store``'s ``split`` (at most its first
    ``limit`` records), each record's words swapped with probability ``rate`` (seeded by ``seed`` and the image
    id) and asked with the rewrite prompt named ``prompt``; ``scope="sentence"``: one example per corrupted
    sentence judged inconsistent (``shapes_rewrite_data.sentence_examples``). Records without a scene graph are
    counted in ``skipped``, corruptions with no sentence judged inconsistent in ``unchanged``."""

    def __init__(self, store: str, split: str, prompt: str = "short", critiqued: str = "inconsistent",
                 rate: float = 0.15, seed: int = 0, limit: int | None = None, scope: str = "caption") -> None:
        if not 0 < rate <= 1:
            raise VLForgeError(f"rewrite data: rate must be in (0, 1], got {rate}")
        if scope not in SCOPES:
            raise VLForgeError(f"rewrite data: scope must be one of {', '.join(SCOPES)}, got {scope!r}")
        self.examples: list[dict[str, str]] = []
        self.skipped = self.unchanged = 0
        with CaptionStore(store, readonly=True) as source:
            for number, record in enumerate(source.iter_records(split=split)):
                if limit is not None and number >= limit:
                    break
                if "scene_graph" not in record.meta:
                    self.skipped += 1
                    continue
                rng = random.Random(f"rewrite/{seed}/{record.image_id}")
                if scope == "sentence":
                    examples = sentence_examples(record, gt_dense_caption(record), rng, rate, prompt)
                else:
                    example = rewrite_example(record, gt_dense_caption(record), rng, rate, prompt, critiqued)
                    examples = [] if example is None else [example]
                self.unchanged += not examples
                self.examples += examples
        if not self.examples:
            raise VLForgeError(f"rewrite data: no example from store {store} split {split!r}")

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict[str, str]:
        return self.examples[i]
