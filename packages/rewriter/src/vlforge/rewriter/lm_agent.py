"""The challenge-response agent as any generative model ``vlforge.common.lm`` loads, prompted with the paper's
prompts (query-rewriter paper §3.1, Fig. 2 a.2; templates in :mod:`vlforge.rewriter.agent_prompts`).

- An image-text-to-text model (LLaVA, Qwen2-VL, ...) sees the right and the wrong images as one picture: panels in
  reading order, numbered in their top-left corners, panel 1 the right image (``images`` template; one picture
  because ``common.lm`` generation takes one image per prompt).
- A text-only causal LM reads their descriptions, the captions of ``descriptions_source`` / ``descriptions_kind``
  in the store (e.g. a vlforge captioner's predictions; ``descriptions`` template). A right image without one gets
  no proposal.

Each turn generates ``num_samples`` outputs of one prompt in one batch, seeded by the query id and the turn (a
rerun proposes the same). The rewrite is parsed from each output (``agent_prompts.parse_rewrite``); an output with
none is no proposal, and its query id is kept in ``unparsable``. :meth:`LMRewriteAgent.blur` makes a high-quality
query vaguer with the ``blur`` template (§3.1's augmentation, make-data's ``lm.blur``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image, ImageDraw

from vlforge.common.errors import VLForgeError
from vlforge.common.lm.generate import generate_sequences
from vlforge.common.lm.generated_store import batch_seed
from vlforge.common.lm.model import GenerativeModel
from vlforge.common.lm.prompts import takes_images, tokenizer_of
from vlforge.common.records import ImageRecord
from vlforge.rewriter.agent_prompts import AgentPrompts, load_prompts, parse_rewrite
from vlforge.rewriter.agents import QueryCase
from vlforge.rewriter.description_agent import stored_description

DEFAULT_DECODING = {"max_new_tokens": 256, "do_sample": True, "temperature": 0.7}
PANEL_SIZE = 224
GAP = 4


@dataclass
class LMAgentSettings:
    """make-data's ``lm`` options: the model (``source``: ``preset:NAME``, a hub name or a local folder;
    ``weights``: a vlforge checkpoint to load into it; ``kind``, ``dtype``, ``trust_remote_code``), the prompts
    (shipped name or YAML path), the prompt style, ``decoding`` (``model.generate`` keyword arguments),
    ``num_samples`` outputs per turn, the seed, and whether high-quality queries are blurred by the model."""

    source: str = ""
    weights: str | None = None
    kind: str = "auto"
    dtype: str = "float32"
    trust_remote_code: bool = False
    prompts: str = "paper"
    prompt_style: str = "chat"
    decoding: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_DECODING))
    num_samples: int = 2
    seed: int = 0
    blur: bool = False

    def __post_init__(self) -> None:
        if self.num_samples < 1:
            raise VLForgeError(f"lm.num_samples must be >= 1, got {self.num_samples}")


def panel_picture(images: list[Image.Image], panel_size: int = PANEL_SIZE) -> Image.Image:
    """``images`` as square panels on a white grid of ceil(sqrt(n)) columns, reading order, each numbered (1..n)
    in its top-left corner."""
    columns = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    step = panel_size + GAP
    picture = Image.new("RGB", (columns * step - GAP, rows * step - GAP), "white")
    draw = ImageDraw.Draw(picture)
    for number, image in enumerate(images, start=1):
        x, y = ((number - 1) % columns) * step, ((number - 1) // columns) * step
        picture.paste(image.convert("RGB").resize((panel_size, panel_size)), (x, y))
        draw.rectangle((x, y, x + 22, y + 16), fill="black")
        draw.text((x + 4, y + 3), str(number), fill="white")
    return picture


class LMRewriteAgent:
    """Rewrites by a generative model with the paper's prompts (module docstring). ``load_image`` reads a
    record's pixels (``CaptionStore.load_image``); ``max_words`` goes into the prompts."""

    name = "lm"

    def __init__(self, model: torch.nn.Module, processor: Any, prompts: AgentPrompts, settings: LMAgentSettings,
                 load_image: Callable[[ImageRecord], Image.Image], max_words: int,
                 descriptions_source: str | None = None, descriptions_kind: str | None = None) -> None:
        self.model, self.processor, self.prompts, self.settings = model, processor, prompts, settings
        self.load_image, self.max_words = load_image, max_words
        self.sees_images = takes_images(processor)
        if not self.sees_images and not descriptions_source:
            raise VLForgeError(f"--agent lm: {settings.source!r} is a text-only LM; it reads the images' "
                               "descriptions: pass --descriptions_source (the captioner's name)")
        self.descriptions_source, self.descriptions_kind = descriptions_source, descriptions_kind
        self.unparsable: list[str] = []

    @classmethod
    def load(cls, settings: LMAgentSettings, device: str, load_image: Callable[[ImageRecord], Image.Image],
             max_words: int, descriptions_source: str | None = None,
             descriptions_kind: str | None = None) -> LMRewriteAgent:
        """The agent with its model loaded by ``common.lm`` (trust_remote_code as the settings say) on ``device``."""
        if not settings.source:
            raise VLForgeError("--agent lm needs --lm.source (preset:NAME, a hub name or a local folder)")
        prompts = load_prompts(settings.prompts)
        holder = GenerativeModel(settings.source, kind=settings.kind, dtype=settings.dtype,
                                 trust_remote_code=settings.trust_remote_code, weights=settings.weights)
        return cls(holder.model.to(device).eval(), holder.processor, prompts, settings, load_image, max_words,
                   descriptions_source, descriptions_kind)

    def _description(self, record: ImageRecord) -> str | None:
        return stored_description(record, self.descriptions_source or "", self.descriptions_kind)

    def _generate(self, prompt: str, image: Image.Image | None, key: str) -> list[str]:
        count = self.settings.num_samples
        device = next(self.model.parameters()).device
        with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
            torch.manual_seed(batch_seed(self.settings.seed, key))
            sequences = generate_sequences(self.model, self.processor, [prompt] * count,
                                           None if image is None else [image] * count, self.settings.decoding,
                                           batch_size=count, prompt_style=self.settings.prompt_style,
                                           with_logprobs=False)
        tokenizer = tokenizer_of(self.processor)
        return [tokenizer.decode(s.response_ids, skip_special_tokens=True) for s in sequences]

    def _parsed(self, outputs: list[str], query_id: str) -> list[str]:
        rewrites = []
        for output in outputs:
            rewrite = parse_rewrite(output, self.prompts.answer_tag)
            if rewrite is None:
                self.unparsable.append(query_id)
            else:
                rewrites.append(rewrite)
        return list(dict.fromkeys(rewrites))

    def propose(self, case: QueryCase, wrong: list[ImageRecord], turn: int) -> list[str]:
        values = {"query": case.text, "num_wrong": len(wrong), "turn": turn, "max_words": self.max_words}
        if self.sees_images:
            picture = panel_picture([self.load_image(r) for r in [case.record, *wrong]])
            prompt = self.prompts.fill("images", **values, num_panels=len(wrong) + 1)
        else:
            right = self._description(case.record)
            if right is None:
                return []
            lines = [f"Wrong image {i}: {self._description(r) or '(no description)'}"
                     for i, r in enumerate(wrong, start=1)]
            picture = None
            prompt = self.prompts.fill("descriptions", **values, right_description=right,
                                       wrong_descriptions="\n".join(lines))
        return self._parsed(self._generate(prompt, picture, f"{case.query_id}#{turn}"), case.query_id)

    def blur(self, query_id: str, query: str) -> str | None:
        """A vaguer version of a high-quality query by the model (the first parsable of its samples)."""
        prompt = self.prompts.fill("blur", query=query, max_words=self.max_words)
        rewrites = self._parsed(self._generate(prompt, None, f"{query_id}#blur"), query_id)
        return rewrites[0] if rewrites else None
