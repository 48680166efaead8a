"""PPO functions against direct element-by-element implementations; the value head on a real tiny LM."""

import math

import pytest
import torch

from vlforge.common.errors import VLForgeError
from vlforge.rewriter.ppo import (
    gae,
    kl_penalised_rewards,
    masked_mean,
    masked_var,
    policy_loss,
    retrieval_reward,
    sequence_kl,
    value_loss,
    whiten,
)
from vlforge.rewriter.value_head import ValueHead


def _rollouts(seed, b=3, t=7):
    """Random tensors and a mask with a prompt part (0), a response (1) and right padding (0) per row."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(b, t)
    for row in range(b):
        start = int(torch.randint(0, 3, (1,), generator=g))
        stop = int(torch.randint(start + 1, t + 1, (1,), generator=g))
        mask[row, start:stop] = 1
    rand = lambda: torch.randn(b, t, generator=g, dtype=torch.float64)  # noqa: E731
    return mask.double(), rand, g


def _gae_loop(rewards, values, mask, gamma, lam):
    b, t = len(rewards), len(rewards[0])
    advantages = [[0.0] * t for _ in range(b)]
    for i in range(b):
        positions = [k for k in range(t) if mask[i][k]]
        last = positions[-1]
        running = 0.0
        for k in reversed(positions):
            next_value = values[i][k + 1] if k < last else 0.0
            delta = rewards[i][k] + gamma * next_value - values[i][k]
            running = delta + gamma * lam * running
            advantages[i][k] = running
    return advantages


@pytest.mark.parametrize("seed, gamma, lam", [(0, 1.0, 0.95), (1, 0.99, 0.9), (2, 0.5, 1.0), (3, 1.0, 0.0)])
def test_gae_matches_a_direct_reverse_loop(seed, gamma, lam):
    mask, rand, _ = _rollouts(seed)
    rewards, values = rand(), rand()
    advantages, returns = gae(rewards, values, mask, gamma, lam)
    expected = torch.tensor(_gae_loop(rewards.tolist(), values.tolist(), mask.tolist(), gamma, lam),
                            dtype=torch.float64)
    torch.testing.assert_close(advantages, expected)
    on = mask.bool()
    torch.testing.assert_close(returns[on], (advantages + values)[on])


def test_gae_with_lambda_one_gamma_one_gives_rewards_to_go_minus_value():
    rewards = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    values = torch.tensor([[0.5, -1.0, 2.0, 0.0]])
    mask = torch.tensor([[0, 1, 1, 0]])
    advantages, returns = gae(rewards, values, mask, 1.0, 1.0)
    torch.testing.assert_close(advantages, torch.tensor([[0.0, 3.0 - (-1.0), 2.0 - 2.0, 0.0]]))
    torch.testing.assert_close(returns[0, 1:3], torch.tensor([3.0, 2.0]))


def test_kl_penalised_rewards_match_a_direct_loop():
    mask, rand, g = _rollouts(4)
    logprobs, ref = rand(), rand()
    scores = torch.randn(3, generator=g, dtype=torch.float64)
    rewards, kl = kl_penalised_rewards(scores, logprobs, ref, mask, kl_coef=0.1)
    for i in range(3):
        last = max(k for k in range(7) if mask[i, k])
        for k in range(7):
            expected_kl = (logprobs[i, k] - ref[i, k]).item() if mask[i, k] else 0.0
            expected = -0.1 * expected_kl + (scores[i].item() if k == last else 0.0)
            assert kl[i, k].item() == pytest.approx(expected_kl, abs=1e-12)
            assert rewards[i, k].item() == pytest.approx(expected, abs=1e-12)
    torch.testing.assert_close(sequence_kl(logprobs, ref, mask), kl.sum(1))


def test_retrieval_reward_is_eq4():
    assert retrieval_reward(torch.tensor([0.31]), torch.tensor([0.25])).item() == pytest.approx(20 * 0.06)


def test_empty_response_is_named():
    with pytest.raises(VLForgeError, match=r"rollouts \[1\] have no response token"):
        kl_penalised_rewards(torch.zeros(2), torch.zeros(2, 3), torch.zeros(2, 3),
                             torch.tensor([[1, 1, 0], [0, 0, 0]]), 0.1)


def test_masked_statistics_match_the_selected_elements():
    mask, rand, _ = _rollouts(5)
    x = rand()
    chosen = x[mask.bool()]
    assert masked_mean(x, mask).item() == pytest.approx(chosen.mean().item())
    assert masked_var(x, mask).item() == pytest.approx(chosen.var(unbiased=True).item())
    assert masked_var(x, mask, unbiased=False).item() == pytest.approx(chosen.var(unbiased=False).item())
    rows = masked_mean(x, mask, dim=1)
    for i in range(3):
        assert rows[i].item() == pytest.approx(x[i][mask[i].bool()].mean().item())
    white = whiten(x, mask)[mask.bool()]
    expected = (chosen - chosen.mean()) / math.sqrt(chosen.var().item() + 1e-8)
    torch.testing.assert_close(white, expected)
    torch.testing.assert_close(whiten(x, mask, shift_mean=False)[mask.bool()], expected + chosen.mean())


def test_policy_loss_matches_a_direct_loop():
    mask, rand, _ = _rollouts(6)
    logprobs, old, advantages = rand() * 0.3, rand() * 0.3, rand()
    out = policy_loss(logprobs, old, advantages, mask, clip_range=0.2)
    terms, clipped = [], []
    for i, k in mask.nonzero().tolist():
        ratio = math.exp(logprobs[i, k] - old[i, k])
        a = advantages[i, k].item()
        plain, clip = -a * ratio, -a * min(max(ratio, 0.8), 1.2)
        terms.append(max(plain, clip))
        clipped.append(clip > plain)
    assert out["loss"].item() == pytest.approx(sum(terms) / len(terms))
    assert out["clipfrac"].item() == pytest.approx(sum(clipped) / len(clipped))
    assert 0 < out["clipfrac"].item() < 1


def test_policy_gradient_is_zero_where_clipped():
    logprobs = torch.tensor([[math.log(1.5), math.log(1.05)]], requires_grad=True)
    out = policy_loss(logprobs, torch.zeros(1, 2), torch.ones(1, 2), torch.ones(1, 2), 0.2)
    out["loss"].backward()
    assert logprobs.grad[0, 0] == 0  # ratio 1.5 > 1.2 with A > 0: clipped, no push further
    assert logprobs.grad[0, 1] < 0  # ratio 1.05 inside: the loss falls as the ratio rises


def test_value_loss_matches_a_direct_loop():
    mask, rand, _ = _rollouts(7)
    values, old, returns = rand(), rand(), rand()
    out = value_loss(values, old, returns, mask, clip_range=0.2)
    terms = []
    for i, k in mask.nonzero().tolist():
        v, o, r = values[i, k].item(), old[i, k].item(), returns[i, k].item()
        v_clip = o + min(max(v - o, -0.2), 0.2)
        terms.append(max((v - r) ** 2, (v_clip - r) ** 2))
    assert out["loss"].item() == pytest.approx(0.5 * sum(terms) / len(terms))


def test_value_head_on_a_tiny_real_language_model():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=50, n_positions=32,
                                       bos_token_id=0, eos_token_id=0))
    head = ValueHead(hidden_size=16)
    ids = torch.randint(0, 50, (2, 6), generator=torch.Generator().manual_seed(0))
    hidden = model(ids, output_hidden_states=True).hidden_states[-1]
    values = head(hidden)
    assert values.shape == (2, 6) and torch.count_nonzero(values) == 0  # zero init
    returns = torch.ones(2, 6)
    optimizer = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(200):
        optimizer.zero_grad()
        loss = value_loss(head(hidden.detach()), torch.zeros(2, 6), returns, torch.ones(2, 6), 10.0)["loss"]
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05
