"""The BCO reward shift δ: the running mean of every reward seen so far, over all processes
(:class:`vlforge.common.lm.running.RunningMean`, under the captioner's name)."""

from vlforge.common.lm.running import RunningMean

RunningRewardMean = RunningMean

__all__ = ["RunningRewardMean"]
