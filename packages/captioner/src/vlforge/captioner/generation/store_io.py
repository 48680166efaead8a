"""The captioner's side of caption generation, shared by the single-process run and the Lightning predict path.
The generic store side (pending ids, provenance, failures, batch seeds) is :mod:`vlforge.common.lm.generated_store`.

- which images of a split still need a captioner (``pending_ids``, from common);
- loading a batch's images, where one that fails to decode is set aside as a failure, not an error;
- captioning a batch: generate (``samples`` times per image, drawn one after another from the batch's seed),
  shear to T words (``vlforge.common.text.shear``), and wrap each text as a
  ``Caption(source=<captioner name>, kind=<format kind>)`` with full provenance (model, checkpoint, prompt,
  format, decoding, seed, shear T, raw length in words before shearing, time; with several samples also the
  sample's number). An empty generation is stored as "" (the training datasets skip empty captions); two equal
  samples of one image are one caption;
- the failures list in the store's info: ``info["generation_failures"][<captioner>][<image id>] = reason``; an
  image listed there has no caption of that captioner, so the next run retries it and removes it from the list
  when it succeeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image

import vlforge.captioner as _captioner
from vlforge.captioner.formats import CaptionFormat
from vlforge.captioner.generation.batched import generate_captions
from vlforge.captioner.generation.spec import CaptionerSpec, LoadedCaptioner
from vlforge.common.errors import VLForgeError
from vlforge.common.lm.generated_store import (  # noqa: F401 - re-exported: the captioner's names for them
    FAILURES_KEY,
    batch_seed,
    captioned_ids,
    failures,
    generated_caption,
    now,
    pending_ids,
    update_failures,
)
from vlforge.common.records import Caption, ImageRecord
from vlforge.common.store import CaptionStore
from vlforge.common.text import count_tokens, mean_caption_tokens, shear

RAW_SOURCE = "alt_text"


@dataclass
class PendingImage:
    """An image ready to caption: its record, decoded image and the instruction for it."""

    record: ImageRecord
    image: Image.Image
    instruction: str


def default_shear_tokens(store: CaptionStore) -> int:
    """T = round(mean word count of the store's alt-text captions), at least 1 (the paper's "average length of
    the original captions")."""
    return max(1, round(mean_caption_tokens(store, RAW_SOURCE)))


def instruction_for(fmt: CaptionFormat, record: ImageRecord) -> str:
    """The format's instruction for this image (alt-text fusion puts the image's first non-empty alt-text
    in)."""
    if not fmt.needs_alt_text:
        return fmt.prompt()
    alt = next((c.text for c in record.captions_by(source=RAW_SOURCE) if c.text.strip()), None)
    if alt is None:
        raise VLForgeError(f"record {record.image_id!r} has no alt-text for format {fmt.name!r}")
    return fmt.prompt(alt)


def prepare(store: CaptionStore, record: ImageRecord, fmt: CaptionFormat) -> PendingImage | str:
    """The pending image, or the one-line reason it cannot be captioned (undecodable image, no alt-text)."""
    try:
        return PendingImage(record, store.load_image(record), instruction_for(fmt, record))
    except VLForgeError as err:
        return str(err)


def caption_batch(
    captioner: LoadedCaptioner,
    spec: CaptionerSpec,
    fmt: CaptionFormat,
    items: list[PendingImage],
    shear_tokens: int | None,
    batch_size: int,
    splitter: str = "regex",
) -> dict[str, list[Caption]]:
    """Generate, shear and wrap the captions of ``items`` (image id -> [Caption], ``spec.samples`` each)."""
    if not items:
        return {}
    device = next(captioner.model.parameters()).device
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(batch_seed(spec.seed, items[0].record.image_id))
        raw = [generate_captions(captioner, None, [i.image for i in items], [i.instruction for i in items],
                                 spec.decoding, batch_size) for _ in range(spec.samples)]
    time = now()
    return {
        item.record.image_id: [make_caption(texts[n], spec, fmt, item.instruction, shear_tokens, time, splitter,
                                            sample=k if spec.samples > 1 else None)
                               for k, texts in enumerate(raw)]
        for n, item in enumerate(items)
    }


def make_caption(
    raw: str, spec: CaptionerSpec, fmt: CaptionFormat, instruction: str, shear_tokens: int | None, time: str,
    splitter: str = "regex", sample: int | None = None,
) -> Caption:
    """One generated caption with its provenance (``sample``: its number among several per image); sheared to
    ``shear_tokens`` words unless that is None."""
    text = shear(raw, shear_tokens, splitter=splitter) if shear_tokens is not None else " ".join(raw.split())
    provenance = {
        **spec.provenance(),
        "prompt": instruction,
        "shear_tokens": shear_tokens,
        "raw_tokens": count_tokens(raw),
        **({"sample": sample} if sample is not None else {}),
    }
    return generated_caption(text, spec.name, fmt.kind, provenance, f"vlforge-captioner {_captioner.__version__}", time)
