"""preference_loss against a direct per-sequence implementation of Eq. 1-4 and against a real TRL DPOTrainer."""

import math

import pytest
import torch
from datasets import Dataset
from transformers import LlamaConfig, LlamaForCausalLM
from trl import DPOConfig, DPOTrainer

from vlforge.captioner.logprobs import sequence_logprobs
from vlforge.captioner.losses import preference_loss
from vlforge.common.errors import VLForgeError
from vlforge.common.presets.tokenizer import SPECIAL_TOKENS, train_bpe_tokenizer


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


def _tiny_lm(vocab_size: int, seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(config)


# prompt, chosen, rejected; one byte = one token (a BPE without merges), TRL appends EOS to both responses
EQUAL_CHOSEN = [("the image", "red circles", "a blue square"), ("what is it", "blue square", "a red star"),
                ("describe", "green stars", "two grey hexagons")]
UNEQUAL_CHOSEN = [("the image", "red", "a blue square"), ("what is it", "a big blue square", "a red star"),
                  ("describe", "green stars", "two")]
LOSS_TYPES = {"dpo": "sigmoid", "bco": "bco_pair", "sft": "sft"}  # vlforge term -> TRL loss type


def _trl_loss(rows, loss_types: list[str], weights: list[float], beta: float, tmp_path) -> tuple[float, dict, dict]:
    """A real TRL DPOTrainer (from a DPOConfig) over ``rows``: its loss on one batch of all rows, and that
    batch's policy and reference log-probs and completion lengths computed the vlforge way."""
    tokenizer = train_bpe_tokenizer([" ".join(r) for r in rows], vocab_size=len(SPECIAL_TOKENS) + 256)
    policy, reference = _tiny_lm(len(tokenizer), 0), _tiny_lm(len(tokenizer), 1)
    config = DPOConfig(output_dir=str(tmp_path / "trl"), loss_type=loss_types, loss_weights=weights, beta=beta,
                       per_device_train_batch_size=len(rows), report_to=[], use_cpu=True, max_length=None,
                       dataset_num_proc=None, seed=0)
    dataset = Dataset.from_list([{"prompt": p, "chosen": c, "rejected": r} for p, c, r in rows])
    trainer = DPOTrainer(model=policy, ref_model=reference, args=config, train_dataset=dataset,
                         processing_class=tokenizer)
    batch = next(iter(trainer.get_train_dataloader()))
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, batch).item()
        labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
        logps = {}
        for name, model in (("policy", policy), ("reference", reference)):
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            logps[name], lengths = sequence_logprobs(logits, labels)
    return loss, logps, lengths


@pytest.mark.parametrize("rows", [EQUAL_CHOSEN, UNEQUAL_CHOSEN], ids=["equal_chosen_lengths", "unequal"])
def test_mpo_combination_matches_a_trl_dpo_trainer(rows, tmp_path):
    """TRL 1.16's DPOTrainer with loss_type ["sigmoid", "bco_pair", "sft"] (MPO's DPO + BCO + SFT) against
    preference_loss on the same rows and reference log-probs: each term alone, then the weighted sum.
    Counterparts: sigmoid = Eq. 2 (DPO); bco_pair = Eq. 4 with delta = 0 (TRL's pairwise BCO has no running mean);
    sft = Eq. 3 when the chosen responses have equal lengths, since TRL averages over all chosen tokens of the
    batch where Eq. 3 averages each response's mean (-sum log p / sum n, checked on unequal lengths)."""
    beta, (a1, a2, a3) = 0.5, (0.8, 1.0, 0.2)
    trl = {}
    for term, loss_type in LOSS_TYPES.items():
        trl[term], logps, lengths = _trl_loss(rows, [loss_type], [1.0], beta, tmp_path / term)
    trl["loss"], logps, lengths = _trl_loss(rows, list(LOSS_TYPES.values()), [a1, a3, a2], beta, tmp_path / "all")
    n = len(rows)
    (pc, pr), (rc, rr) = logps["policy"].split(n), logps["reference"].split(n)
    ours = preference_loss(pc, pr, rc, rr, lengths[:n], beta=beta, delta=0.0, weights=(a1, a2, a3))
    assert ours["dpo"].item() == pytest.approx(trl["dpo"], rel=1e-5)
    assert ours["bco"].item() == pytest.approx(trl["bco"], rel=1e-5)
    token_mean_sft = (-pc.sum() / lengths[:n].sum()).item()
    assert trl["sft"] == pytest.approx(token_mean_sft, rel=1e-5)
    if rows is EQUAL_CHOSEN:
        assert len(set(lengths[:n].tolist())) == 1
        assert ours["sft"].item() == pytest.approx(trl["sft"], rel=1e-5)
        assert ours["loss"].item() == pytest.approx(trl["loss"], rel=1e-5)
    else:
        assert len(set(lengths[:n].tolist())) == n
        assert ours["sft"].item() != pytest.approx(trl["sft"], rel=1e-3)  # the documented difference is real
        combined = a1 * ours["dpo"].item() + a3 * ours["bco"].item() + a2 * token_mean_sft
        assert trl["loss"] == pytest.approx(combined, rel=1e-5)
