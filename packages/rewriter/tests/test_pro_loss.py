"""pro_loss against a direct loop of Eq. 3, against the PRO authors' formula, and gradient sanity."""

import math

import pytest
import torch

from vlforge.common.errors import VLForgeError
from vlforge.rewriter.losses import pro_loss


def _eq3_loop(logps, lengths, rewards):
    """Eq. 3 written term by term in plain Python: T_j^i = 1/(r_j − r_i), T_j^j = min_{i>j} T_j^i."""
    total = 0.0
    for b in range(len(logps)):
        ranked = sorted(range(len(rewards[b])), key=lambda k: -rewards[b][k])
        s = [logps[b][k] / lengths[b][k] for k in ranked]
        r = [rewards[b][k] for k in ranked]
        n = len(s)
        for j in range(n - 1):
            inv_t = {i: r[j] - r[i] for i in range(j + 1, n)}  # 1 / T_j^i
            inv_t[j] = max(inv_t.values())  # 1 / min_i T_j^i
            numerator = math.exp(s[j] * inv_t[j])
            denominator = sum(math.exp(s[i] * inv_t[i]) for i in range(j, n))
            total -= math.log(numerator / denominator)
    return total / len(logps)


def _authors_formula(sum_logps, lengths, sorted_rewards, sft_weight):
    """The formula of PRO/train/utils/process_manager.py (compute_loss), re-derived: candidates arrive sorted
    by reward; per stage j the loss is log(1e-10 + exp(s_j·D_j) + Σ_{i>j} exp(s_i·(r_j − r_i))) − s_j·D_j,
    averaged over the batch and summed over stages; the SFT term is sft_weight·(n−1)²·mean(−sum_logp of the
    sft_index candidate), here index 0."""
    scores = sum_logps / lengths
    n = scores.shape[1]
    total = torch.zeros(())
    for j in range(n - 1):
        gaps = sorted_rewards[:, j:j + 1] - sorted_rewards[:, j + 1:]
        d = gaps.max(dim=1).values
        per_query = torch.log(1e-10 + torch.exp(scores[:, j] * d) + torch.exp(scores[:, j + 1:] * gaps).sum(1))
        total = total + (per_query - scores[:, j] * d).mean()
    return total + sft_weight * (n - 1) ** 2 * (-sum_logps[:, 0]).mean()


def _batch(seed, b=4, n=5):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 12, (b, n), generator=g).double()
    logps = -torch.rand(b, n, generator=g, dtype=torch.float64) * lengths * 3
    rewards = torch.rand(b, n, generator=g, dtype=torch.float64) * 4 - 2
    return logps, lengths, rewards


@pytest.mark.parametrize("seed", range(5))
def test_ranking_matches_a_direct_loop_of_eq3(seed):
    logps, lengths, rewards = _batch(seed)
    out = pro_loss(logps, lengths, rewards)
    expected = _eq3_loop(logps.tolist(), lengths.tolist(), rewards.tolist())
    assert out["ranking"].item() == pytest.approx(expected, rel=1e-10)
    assert out["loss"].item() == pytest.approx(expected, rel=1e-10)


def test_order_of_candidates_does_not_matter():
    logps, lengths, rewards = _batch(7)
    perm = torch.randperm(5, generator=torch.Generator().manual_seed(0))
    a = pro_loss(logps, lengths, rewards, sft_weight=0.3)
    b = pro_loss(logps[:, perm], lengths[:, perm], rewards[:, perm], sft_weight=0.3)
    assert a["loss"].item() == pytest.approx(b["loss"].item(), rel=1e-12)


def test_sft_term_is_the_best_candidates_per_token_nll():
    logps, lengths, rewards = _batch(3)
    out = pro_loss(logps, lengths, rewards, sft_weight=0.5)
    best = rewards.argmax(dim=1)
    expected = -(logps.gather(1, best[:, None]) / lengths.gather(1, best[:, None])).mean()
    assert out["sft"].item() == pytest.approx(expected.item(), rel=1e-12)
    assert out["loss"].item() == pytest.approx(out["ranking"].item() + 0.5 * expected.item(), rel=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_parity_with_the_pro_authors_formula(seed):
    logps, lengths, rewards = _batch(seed)
    order = rewards.argsort(dim=1, descending=True)
    sorted_args = [t.gather(1, order) for t in (logps, lengths, rewards)]
    theirs_ranking = _authors_formula(*sorted_args, sft_weight=0.0)
    ours = pro_loss(logps, lengths, rewards)
    assert ours["ranking"].item() == pytest.approx(theirs_ranking.item(), rel=1e-8)
    # Their SFT term sums log-probs and weights by (n-1)^2: equal to ours when every candidate is one token
    # long and our weight is theirs times (n-1)^2.
    ones = torch.ones_like(lengths)
    per_token = logps / lengths  # one-token candidates with moderate log-probs (their 1e-10 stays negligible)
    theirs = _authors_formula(per_token.gather(1, order), ones, sorted_args[2], sft_weight=0.2)
    ours = pro_loss(per_token, ones, rewards, sft_weight=0.2 * (5 - 1) ** 2)
    assert ours["loss"].item() == pytest.approx(theirs.item(), rel=1e-8)


def test_stable_where_the_naive_formula_overflows():
    logps = torch.tensor([[-1.0, -900.0, -5.0]], dtype=torch.float32)
    lengths = torch.ones_like(logps)
    rewards = torch.tensor([[0.0, -1.0, -2.0]], dtype=torch.float32) * 1.0
    out = pro_loss(logps * -1, lengths, rewards * 1.0)  # positive scores x gap 2 -> exp(1800) overflows
    assert torch.isfinite(out["loss"])
    naive = _authors_formula(logps * -1, lengths, rewards, 0.0)
    assert not torch.isfinite(naive)


def test_gradients_push_the_better_candidate_up_and_the_worse_down():
    logps = torch.tensor([[-4.0, -4.0, -4.0]], requires_grad=True)
    lengths = torch.tensor([[2.0, 2.0, 2.0]])
    rewards = torch.tensor([[0.1, 0.9, 0.5]])  # best is candidate 1, worst candidate 0
    pro_loss(logps, lengths, rewards)["loss"].backward()
    grad = logps.grad[0]
    assert grad[1] < 0 < grad[0]  # descending the loss raises the best, lowers the worst
    assert torch.isfinite(grad).all()


def test_gradcheck_in_double():
    logps, lengths, rewards = _batch(11, b=2, n=4)
    logps.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: pro_loss(x, lengths, rewards, sft_weight=0.7)["loss"], (logps,))


def test_equal_rewards_give_a_constant_ranking_term():
    logps = torch.tensor([[-1.0, -3.0, -2.0]], requires_grad=True)
    out = pro_loss(logps, torch.ones(1, 3), torch.zeros(1, 3))
    assert out["ranking"].item() == pytest.approx(math.log(3) + math.log(2))
    out["ranking"].backward()
    assert torch.equal(logps.grad, torch.zeros_like(logps))


@pytest.mark.parametrize("bad, message", [
    (dict(rewards=torch.tensor([[0.0, float("nan")]])), "NaN"),
    (dict(lengths=torch.tensor([[0.0, 1.0]])), "length"),
    (dict(logps=torch.zeros(1, 1), lengths=torch.ones(1, 1), rewards=torch.zeros(1, 1)), "at least 2"),
    (dict(logps=torch.zeros(2)), "one shape"),
])
def test_bad_input_is_one_line_error(bad, message):
    args = dict(logps=torch.zeros(1, 2), lengths=torch.ones(1, 2), rewards=torch.tensor([[1.0, 0.0]]))
    args.update(bad)
    with pytest.raises(VLForgeError, match=message):
        pro_loss(**args)
