"""Response log-probabilities: moved to :mod:`vlforge.common.lm.logprobs` (the captioner's names kept)."""

from vlforge.common.lm.logprobs import IGNORE_INDEX, masked_mean, sequence_logprobs, token_logprobs

__all__ = ["IGNORE_INDEX", "masked_mean", "sequence_logprobs", "token_logprobs"]
