"""BLIP losses against direct implementations: hard-negative weights and sampling (never a positive,
frequencies as the equation says, across a real 2-process gloo group), ITM cross-entropy, the captioning LM
loss (also against transformers' own BlipTextLMHeadModel loss)."""

from __future__ import annotations

import math
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from transformers import BlipTextConfig, BlipTextLMHeadModel

from vlforge.vlm.losses.blip import (
    IGNORE_INDEX,
    caption_labels,
    caption_lm_loss,
    gather_rows,
    hard_negative_weights,
    itm_loss,
    mine_hard_negatives,
    sample_hard_negatives,
)

# an image may own several texts: pairs 0,1 share image 7; pairs 3,4,5 share image 9
OWNERS = torch.tensor([7, 7, 8, 9, 9, 9, 10])


def _direct_weights(similarity: torch.Tensor, rows: list[int], columns: list[int]) -> list[list[float]]:
    out = []
    for i, row in enumerate(similarity.tolist()):
        total = sum(math.exp(v) for v in row)
        out.append([0.0 if columns[j] == rows[i] else math.exp(v) / total + 1e-4 for j, v in enumerate(row)])
    return out


def test_weights_match_the_equation():
    similarity = torch.randn(7, 7, generator=torch.Generator().manual_seed(0)) * 5
    weights = hard_negative_weights(similarity, OWNERS, OWNERS)
    expected = torch.tensor(_direct_weights(similarity, OWNERS.tolist(), OWNERS.tolist()))
    torch.testing.assert_close(weights, expected, rtol=1e-5, atol=1e-7)


def test_sampler_never_draws_a_positive_and_follows_the_weights():
    g = torch.Generator().manual_seed(1)
    similarity = torch.randn(7, 7, generator=g) * 3
    similarity.fill_diagonal_(20.0)  # positives are the most similar: the sampler must still skip them
    similarity[0, 1] = similarity[3, 4] = similarity[5, 3] = 20.0
    draws = 4000  # every row repeated: one call draws 4000 times per row
    drawn = sample_hard_negatives(similarity.repeat(draws, 1), OWNERS.repeat(draws), OWNERS, generator=g)
    row_owners = OWNERS.repeat(draws)
    assert (drawn >= 0).all() and (OWNERS[drawn] != row_owners).all()
    counts = torch.zeros(7, 7).index_put_((torch.arange(7).repeat(draws), drawn), torch.ones(7 * draws),
                                          accumulate=True)
    weights = hard_negative_weights(similarity, OWNERS, OWNERS)
    expected = weights / weights.sum(dim=1, keepdim=True)
    assert (counts / draws - expected).abs().max() < 0.035


def test_a_row_without_negatives_gets_minus_one():
    owners = torch.tensor([3, 3, 3])
    assert sample_hard_negatives(torch.zeros(3, 3), owners, owners).tolist() == [-1, -1, -1]
    rows, columns = torch.tensor([3, 4]), torch.tensor([3, 3, 4])
    drawn = sample_hard_negatives(torch.zeros(2, 3), rows, columns)
    assert drawn[0].item() == 2 and drawn[1].item() in (0, 1)


def test_mining_scales_similarities_and_returns_both_directions():
    g = torch.Generator().manual_seed(2)
    x = F.normalize(torch.randn(7, 16, generator=g), dim=-1)
    y = F.normalize(torch.randn(7, 16, generator=g), dim=-1)
    y[5] = x[2]  # text 5 (image 9) is image 2's (image 8) most similar text by far: a hard negative
    negative_text, negative_image, owners = mine_hard_negatives(x, y, OWNERS, torch.tensor(50.0))
    assert torch.equal(owners, OWNERS)
    assert (OWNERS[negative_text] != OWNERS).all() and (OWNERS[negative_image] != OWNERS).all()
    hot = [mine_hard_negatives(x, y, OWNERS, torch.tensor(100.0))[0][2].item() for _ in range(50)]
    cold = [mine_hard_negatives(x, y, OWNERS, torch.tensor(0.01))[0][2].item() for _ in range(50)]
    assert hot.count(5) >= 45 and cold.count(5) <= 25  # the scale sharpens the draw


def test_itm_loss_is_the_mean_negative_log_likelihood():
    logits = torch.randn(6, 2, generator=torch.Generator().manual_seed(4))
    labels = torch.tensor([1, 1, 0, 0, 0, 0])
    rows = logits.tolist()
    direct = -sum(math.log(math.exp(row[y]) / sum(math.exp(v) for v in row))
                  for row, y in zip(rows, labels.tolist(), strict=True)) / 6
    assert itm_loss(logits, labels).item() == pytest.approx(direct, rel=1e-5)


def test_caption_labels_ignore_padding_and_the_start_token():
    ids = torch.tensor([[1, 5, 6, 2, 0], [1, 7, 2, 0, 0]])
    mask = (ids != 0).long()
    assert caption_labels(ids, mask).tolist() == [[IGNORE_INDEX, 5, 6, 2, IGNORE_INDEX],
                                                  [IGNORE_INDEX, 7, 2, IGNORE_INDEX, IGNORE_INDEX]]
    prompted = caption_labels(ids, mask, prompt_length=2)
    assert prompted[0].tolist() == [IGNORE_INDEX, IGNORE_INDEX, 6, 2, IGNORE_INDEX]


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_lm_loss_matches_the_equation(eps):
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 5, 9, generator=g)
    labels = torch.tensor([[IGNORE_INDEX, 3, 4, 8, IGNORE_INDEX], [IGNORE_INDEX, 1, IGNORE_INDEX, 2, 6]])
    terms = []
    for b in range(2):
        for t in range(1, 5):
            if labels[b, t] == IGNORE_INDEX:
                continue
            log_p = logits[b, t - 1].log_softmax(-1)
            terms.append((1 - eps) * -log_p[labels[b, t]].item() + eps * -log_p.mean().item())
    assert caption_lm_loss(logits, labels, eps).item() == pytest.approx(sum(terms) / len(terms), rel=1e-5)


def test_lm_loss_equals_the_transformers_decoder_loss():
    torch.manual_seed(0)
    config = BlipTextConfig(vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                            num_attention_heads=2, encoder_hidden_size=8, max_position_embeddings=16,
                            label_smoothing=0.1)
    decoder = BlipTextLMHeadModel(config).eval()
    ids = torch.tensor([[1, 5, 6, 2, 0, 0], [1, 7, 9, 11, 3, 2]])
    mask = (ids != 0).long()
    image = torch.randn(2, 3, 8)
    labels = caption_labels(ids, mask)
    out = decoder(input_ids=ids, attention_mask=mask, encoder_hidden_states=image, labels=labels)
    assert caption_lm_loss(out.logits, labels, 0.1).item() == pytest.approx(out.loss.item(), rel=1e-5)


# ---------------------------------------------------------------- two processes
def _ddp_worker(rank: int, world_size: int, port: int, results: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        # rank 0 holds pairs 0..2, rank 1 pairs 3..6; image 9 owns pairs on both ranks
        owners = torch.tensor([7, 7, 9]) if rank == 0 else torch.tensor([9, 9, 10, 11])
        n = owners.shape[0]
        x = F.normalize(torch.randn(n, 8, generator=torch.Generator().manual_seed(rank)), dim=-1)
        ids = torch.arange(1, 1 + n * (3 + rank)).reshape(n, 3 + rank)  # different lengths per rank
        drawn = [mine_hard_negatives(x, x, owners, torch.tensor(10.0))[:2] for _ in range(50)]
        results[rank] = {"owners": gather_rows(owners), "ids": gather_rows(ids, pad_value=-1),
                         "texts": torch.stack([d[0] for d in drawn]),
                         "images": torch.stack([d[1] for d in drawn]),
                         "local": owners}
    finally:
        dist.destroy_process_group()


@pytest.mark.ddp
def test_mining_gathers_candidates_across_processes(free_port):
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_ddp_worker, args=(2, free_port, results), nprocs=2, join=True)
        results = dict(results)
    everyone = torch.tensor([7, 7, 9, 9, 9, 10, 11])
    for rank in range(2):
        out = results[rank]
        assert torch.equal(out["owners"], everyone)
        assert out["ids"].shape == (7, 4) and out["ids"][:3, 3].tolist() == [-1, -1, -1]
        for drawn in (out["texts"], out["images"]):
            assert (drawn >= 0).all() and (everyone[drawn] != out["local"]).all()
        # candidates come from the other rank too
        assert (out["texts"] >= 3).any() if rank == 0 else (out["texts"] < 3).any()
