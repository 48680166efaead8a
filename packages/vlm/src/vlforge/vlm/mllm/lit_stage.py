"""LlavaStageLitModule: one stage of LLaVA-style MLLM training (pre-align, pre-train, instruct) as
:class:`vlforge.common.lm.lit_sft.SFTLitModule` over a :class:`~vlforge.vlm.mllm.stage_model.LlavaStageModel`.

Every stage minimises the response NLL of SFTLitModule (loss on the caption in the caption stages, on the assistant
turns in the instruction stage):

    L = − Σ_i Σ_t m_it log π(y_it | y_i<t, image_i, x_i) / Σ_i Σ_t m_it

What differs between stages is configuration: what trains (the model's freezing policy), the learning rate per
part (``part_lr``: the ultra-detailed caption paper's Tables 7-8 train the vision tower at 2e-6 beside 2e-5), the
prompt style (``plain`` for the caption stages, ``chat`` for instructions) and the data module. Each collated batch
has its ``<image>`` token count checked against its images' features (an error naming the sample, never features
paired with the wrong tokens). Each checkpoint carries the LLaVA's stage spec, so the next stage's ``init_from``
can refuse a checkpoint of another architecture.
"""

from __future__ import annotations

import logging
from typing import Any

from vlforge.common.lm.lit_sft import SFTLitModule
from vlforge.vlm.mllm.image_tokens import check_image_tokens
from vlforge.vlm.mllm.stage_model import SPEC_KEY, LlavaStageModel

log = logging.getLogger(__name__)


class LlavaStageLitModule(SFTLitModule):
    """One LLaVA training stage of ``model`` (defaults: Table 7's instruction stage, lr 2e-5, warm-up 0.01, wd 0)."""

    def __init__(self, model: LlavaStageModel, lr: float = 2e-5, weight_decay: float = 0.0,
                 warmup_ratio: float = 0.01, max_length: int | None = None, prompt_style: str = "chat",
                 part_lr: dict[str, float] | None = None, warmup_steps: int = 0,
                 betas: tuple[float, float] = (0.9, 0.999)) -> None:
        super().__init__(model, lr=lr, weight_decay=weight_decay, warmup_ratio=warmup_ratio, max_length=max_length,
                         prompt_style=prompt_style, part_lr=part_lr, warmup_steps=warmup_steps, betas=betas)
        self.stage_model = model
        self.spec = model.spec
        self.initialised = False

    def setup(self, stage: str) -> None:
        """Start from the previous stage's weights (once; a resumed fit then restores its own checkpoint)."""
        if self.initialised:
            return
        loaded = self.stage_model.load_init_weights()
        self.initialised = True
        trainable = ", ".join(f"{part} {count:,}" for part, count in self.stage_model.trainable_per_part.items())
        start = f"from {loaded}" if loaded else "from the built parts"
        log.info("LLaVA stage: %s; projector %s; trainable parameters: %s", start, self.spec["projector"], trainable)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if not isinstance(batch, list):
            return batch
        collated = self.collator(batch)
        check_image_tokens(collated["input_ids"], self.model.config, [int(e.get("image") is not None) for e in batch],
                           collated.get("pixel_values"), [str(e.get("key", "?")) for e in batch])
        return collated

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[SPEC_KEY] = dict(self.spec)

    def on_fit_end(self) -> None:
        counts = self.collator.counts
        log.info("LLaVA stage: %d sequences collated, %d responses truncated, %d lost, %d template fallbacks",
                 counts["sequences"], counts["truncated"], counts["lost"], counts["template_fallback"])
