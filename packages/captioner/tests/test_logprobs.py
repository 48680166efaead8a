"""sequence_logprobs against an explicit loop over sequences and tokens."""

import math

import torch

from vlforge.captioner.logprobs import IGNORE_INDEX, sequence_logprobs


def test_matches_token_loop_and_ignores_prompt_and_padding():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 11, generator=g)
    labels = torch.randint(0, 11, (3, 7), generator=g)
    labels[0, :3] = IGNORE_INDEX          # prompt
    labels[1, :2] = IGNORE_INDEX
    labels[1, 5:] = IGNORE_INDEX          # right padding
    labels[2, :] = IGNORE_INDEX           # nothing to score
    summed, counts = sequence_logprobs(logits, labels)
    for b in range(3):
        expected, n = 0.0, 0
        for t in range(1, 7):
            if labels[b, t] == IGNORE_INDEX:
                continue
            row = logits[b, t - 1].double()
            expected += (row[labels[b, t]] - torch.logsumexp(row, 0)).item()
            n += 1
        assert math.isclose(summed[b].item(), expected, rel_tol=1e-5, abs_tol=1e-5)
        assert counts[b].item() == n
    assert summed[2].item() == 0.0


def test_padding_tokens_do_not_change_the_result():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(1, 5, 9, generator=g)
    labels = torch.tensor([[IGNORE_INDEX, 3, 4, 5, 6]])
    padded_logits = torch.cat([logits, torch.randn(1, 3, 9, generator=g)], dim=1)
    padded_labels = torch.cat([labels, torch.full((1, 3), IGNORE_INDEX)], dim=1)
    torch.testing.assert_close(sequence_logprobs(logits, labels)[0], sequence_logprobs(padded_logits, padded_labels)[0])
