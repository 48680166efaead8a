"""preference_loss against a direct per-sequence implementation of Eq. 1-4 and against TRL's sigmoid DPO loss."""

import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
from accelerate import Accelerator
from transformers import LlamaConfig, LlamaForCausalLM
from trl.trainer.dpo_trainer import DPOTrainer
from trl.trainer.utils import add_fused_lm_head

from vlforge.captioner.logprobs import sequence_logprobs
from vlforge.captioner.losses import preference_loss
from vlforge.common.errors import VLForgeError


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def _direct(pc, pr, rc, rr, n, beta, delta, weights):
    """Eq. 1-4 written out one sequence at a time with Python floats."""
    dpo, sft, bco = [], [], []
    for i in range(len(pc)):
        r_c = beta * (pc[i] - rc[i])
        r_r = beta * (pr[i] - rr[i])
        dpo.append(-_log_sigmoid(r_c - r_r))
        sft.append(-pc[i] / n[i])
        bco.append(-_log_sigmoid(r_c - delta) - _log_sigmoid(-(r_r - delta)))
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    a1, a2, a3 = weights
    return {"dpo": mean(dpo), "sft": mean(sft), "bco": mean(bco),
            "loss": a1 * mean(dpo) + a2 * mean(sft) + a3 * mean(bco)}


@pytest.mark.parametrize("beta,delta,weights", [(0.1, 0.0, (0.8, 1.0, 0.2)), (0.5, -0.3, (1.0, 0.0, 0.0)),
                                                 (2.0, 0.7, (0.3, 0.4, 0.5))])
def test_terms_match_direct_implementation(beta, delta, weights):
    g = torch.Generator().manual_seed(0)
    pc, pr, rc, rr = (-torch.rand(6, generator=g, dtype=torch.float64) * 40 for _ in range(4))
    n = torch.randint(1, 30, (6,), generator=g)
    out = preference_loss(pc, pr, rc, rr, n, beta=beta, delta=delta, weights=weights)
    ref = _direct(pc.tolist(), pr.tolist(), rc.tolist(), rr.tolist(), n.tolist(), beta, delta, weights)
    for key in ("loss", "dpo", "sft", "bco"):
        assert out[key].item() == pytest.approx(ref[key], rel=1e-10), key
    torch.testing.assert_close(out["chosen_rewards"], beta * (pc - rc))
    torch.testing.assert_close(out["rejected_rewards"], beta * (pr - rr))


def test_gradient_flows_to_policy_only_and_delta_tensor_is_constant():
    pc = torch.tensor([-5.0, -7.0], requires_grad=True)
    pr = torch.tensor([-6.0, -6.5], requires_grad=True)
    delta = torch.tensor(0.2, requires_grad=True)
    out = preference_loss(pc, pr, torch.tensor([-5.5, -7.0]), torch.tensor([-6.0, -6.0]), torch.tensor([5, 7]),
                          delta=delta)
    out["loss"].backward()
    assert pc.grad is not None and pr.grad is not None
    assert delta.grad is None
    # raising the chosen log-prob lowers every term, so its gradient is negative
    assert (pc.grad < 0).all()


def test_bad_shapes_and_weights_are_one_line_errors():
    x = torch.zeros(3)
    with pytest.raises(VLForgeError, match="one shape"):
        preference_loss(x, x, x, torch.zeros(2), torch.ones(3))
    with pytest.raises(VLForgeError, match="three numbers"):
        preference_loss(x, x, x, x, torch.ones(3), weights=(1.0, 1.0))


def _tiny_lm() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(config).eval()


def test_dpo_term_equals_trl_sigmoid_dpo_loss():
    """TRL 1.16's DPOTrainer._compute_loss (the real code path, fused LM head and all) on a tiny real Llama, with
    precomputed reference log-probs; our sequence_logprobs + preference_loss(weights=(1, 0, 0)) must agree."""
    model = _tiny_lm()
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "mean_logits", "is_top1"))
    g = torch.Generator().manual_seed(1)
    batch, length, beta = 3, 12, 0.1
    input_ids = torch.randint(1, 50, (2 * batch, length), generator=g)
    attention_mask = torch.ones_like(input_ids)
    completion_mask = torch.zeros_like(input_ids)
    for row, (start, end) in enumerate([(4, 12), (5, 10), (3, 9), (6, 12), (4, 8), (5, 11)]):
        completion_mask[row, start:end] = 1
        attention_mask[row, end:] = 0  # right padding
    ref_chosen = -torch.rand(batch, generator=g) * 30 - 10
    ref_rejected = -torch.rand(batch, generator=g) * 30 - 10

    trainer_state = SimpleNamespace(
        accelerator=Accelerator(cpu=True), model=model, ref_model=None, beta=beta, loss_types=["sigmoid"],
        loss_weights=[1.0], f_divergence_type="reverse_kl", ld_alpha=None, precompute_ref_logps=True,
        aux_loss_enabled=False, use_weighting=False, label_smoothing=0.0, _total_train_tokens=0, _tp_size=1,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)})
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "completion_mask": completion_mask,
              "ref_chosen_logps": ref_chosen, "ref_rejected_logps": ref_rejected}
    with torch.no_grad():
        trl_loss = DPOTrainer._compute_loss(trainer_state, model, inputs, return_outputs=False)
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    labels = input_ids.masked_fill(completion_mask == 0, -100)
    logps, lengths = sequence_logprobs(logits, labels)
    ours = preference_loss(logps[:batch], logps[batch:], ref_chosen, ref_rejected, lengths[:batch], beta=beta,
                           weights=(1.0, 0.0, 0.0))
    assert ours["dpo"].item() == pytest.approx(trl_loss.item(), rel=1e-5)
    assert ours["loss"].item() == pytest.approx(trl_loss.item(), rel=1e-5)
    metrics = trainer_state._metrics["eval"]  # the model is in eval mode
    assert ours["chosen_rewards"].mean().item() == pytest.approx(metrics["rewards/chosen"][0], rel=1e-5)
    assert ours["rejected_rewards"].mean().item() == pytest.approx(metrics["rewards/rejected"][0], rel=1e-5)
