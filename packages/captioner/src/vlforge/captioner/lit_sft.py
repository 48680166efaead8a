"""CaptionerSFTLitModule: :class:`vlforge.common.lm.lit_sft.SFTLitModule` of an image-text-to-text captioner, under
the class path shipped configs and saved checkpoints name (its argument is ``captioner``)."""

from __future__ import annotations

from vlforge.captioner.captioner import Captioner
from vlforge.common.lm.lit_sft import SAMPLE_DECODING, SFTLitModule, model_inputs


class CaptionerSFTLitModule(SFTLitModule):
    """SFT of ``captioner`` (defaults: the ultra-detailed paper's Table 4: lr 1e-5, warm-up 0.03, cosine)."""

    def __init__(self, captioner: Captioner, lr: float = 1e-5, weight_decay: float = 0.0,
                 warmup_ratio: float = 0.03, max_length: int | None = None, prompt_style: str = "chat",
                 part_lr: dict[str, float] | None = None, warmup_steps: int = 0,
                 betas: tuple[float, float] = (0.9, 0.999)) -> None:
        super().__init__(captioner, lr=lr, weight_decay=weight_decay, warmup_ratio=warmup_ratio,
                         max_length=max_length, prompt_style=prompt_style, part_lr=part_lr,
                         warmup_steps=warmup_steps, betas=betas)


__all__ = ["SAMPLE_DECODING", "CaptionerSFTLitModule", "model_inputs"]
