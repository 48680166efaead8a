"""vlforge.common.lm.logprobs against a direct loop and trl's selective_log_softmax; vlforge.common.optim's groups
and schedule against the equations written out."""

import math

import pytest
import torch
from trl.trainer.utils import selective_log_softmax

from vlforge.common.errors import VLForgeError
from vlforge.common.lm.logprobs import IGNORE_INDEX, masked_mean, sequence_logprobs, token_logprobs
from vlforge.common.optim import adamw_warmup_cosine, parameter_groups, warmup_cosine


def _batch():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 11, generator=generator)
    labels = torch.randint(0, 11, (3, 7), generator=generator)
    labels[:, :3] = IGNORE_INDEX
    labels[2, 5:] = IGNORE_INDEX
    return logits, labels


def test_token_logprobs_equal_a_direct_loop_and_trl():
    logits, labels = _batch()
    logps, mask = token_logprobs(logits, labels)
    for b in range(3):
        for t in range(1, 7):
            expected = torch.log_softmax(logits[b, t - 1], -1)[labels[b, t]] if labels[b, t] != IGNORE_INDEX else 0.0
            assert logps[b, t - 1].item() == pytest.approx(float(expected), abs=1e-6)
            assert bool(mask[b, t - 1]) == (labels[b, t] != IGNORE_INDEX)
    theirs = selective_log_softmax(logits[:, :-1], labels[:, 1:].clamp(min=0)) * mask
    torch.testing.assert_close(logps, theirs)
    total, count = sequence_logprobs(logits, labels)
    torch.testing.assert_close(total, logps.sum(-1))
    assert count.tolist() == [4, 4, 2]


def test_masked_mean_counts_only_masked_entries():
    values = torch.tensor([[1.0, 2.0, 100.0], [3.0, 100.0, 100.0]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    assert masked_mean(values, mask).item() == pytest.approx(2.0)
    assert masked_mean(values, mask, dim=1).tolist() == pytest.approx([1.5, 3.0])
    assert masked_mean(values, torch.zeros_like(mask)).item() == 0.0


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(4, 4)
        self.norm = torch.nn.LayerNorm(4)
        self.logit_scale = torch.nn.Parameter(torch.ones(()))
        self.frozen = torch.nn.Linear(4, 4).requires_grad_(False)


def test_no_weight_decay_on_biases_norms_and_logit_scales():
    net = _Net()
    groups = {g["name"]: g for g in parameter_groups(net.named_parameters(), lr=0.1, weight_decay=0.2)}
    assert set(groups) == {"all/decay", "all/no_decay"}
    assert groups["all/decay"]["params"] == [net.proj.weight] and groups["all/decay"]["weight_decay"] == 0.2
    no_decay = {id(p) for p in groups["all/no_decay"]["params"]}
    assert no_decay == {id(net.proj.bias), id(net.norm.weight), id(net.norm.bias), id(net.logit_scale)}
    assert groups["all/no_decay"]["weight_decay"] == 0.0


def test_each_part_gets_its_own_learning_rate_and_unknown_parts_are_errors():
    net = _Net()
    part_of = lambda name: "head" if name.startswith("proj") else "rest"  # noqa: E731
    groups = parameter_groups(net.named_parameters(), 0.1, 0.0, part_of, {"head": 0.01})
    assert {g["name"]: g["lr"] for g in groups} == {"head/no_decay": 0.01, "rest/no_decay": 0.1}
    with pytest.raises(VLForgeError, match="part_lr names part 'vision'"):
        parameter_groups(net.named_parameters(), 0.1, 0.0, part_of, {"vision": 0.01})


@pytest.mark.parametrize("warmup,total", [(0, 10), (3, 10), (10, 10)])
def test_schedule_is_linear_warmup_then_cosine(warmup, total):
    for step in range(total + 2):
        if step < warmup:
            expected = (step + 1) / warmup
        else:
            expected = 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))
        assert warmup_cosine(step, warmup, total) == pytest.approx(expected)


def test_optimizer_steps_the_schedule_per_group():
    net = _Net()
    config = adamw_warmup_cosine(net.named_parameters(), lr=1.0, total_steps=100, weight_decay=0.1,
                                 warmup_ratio=0.1, betas=(0.9, 0.98))
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert optimizer.defaults["betas"] == (0.9, 0.98)
    for step in range(20):
        assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([warmup_cosine(step, 10, 100)] * 2)
        optimizer.step()
        scheduler.step()
    with pytest.raises(VLForgeError, match="not both"):
        adamw_warmup_cosine(net.named_parameters(), 1.0, 100, warmup_steps=3, warmup_ratio=0.1)
