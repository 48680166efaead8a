"""retrieval_metrics against a plain python loop on random scores with several texts per image."""

import statistics

import pytest
import torch

from vlforge.common.errors import VLForgeError
from vlforge.common.metrics.retrieval import retrieval_metrics


def reference(similarity, text_to_image, ks):
    s = similarity.tolist()
    owner = text_to_image.tolist()
    num_images, num_texts = len(s), len(owner)
    t2i_ranks = []
    for j in range(num_texts):
        order = sorted(range(num_images), key=lambda i: -s[i][j])
        t2i_ranks.append(order.index(owner[j]) + 1)
    i2t_ranks = []
    for i in range(num_images):
        own = [j for j in range(num_texts) if owner[j] == i]
        if not own:
            continue
        order = sorted(range(num_texts), key=lambda j: -s[i][j])
        i2t_ranks.append(min(order.index(j) for j in own) + 1)
    out = {}
    for name, ranks in (("t2i", t2i_ranks), ("i2t", i2t_ranks)):
        for k in ks:
            out[f"{name}_r{k}"] = 100.0 * sum(r <= k for r in ranks) / len(ranks)
        out[f"{name}_median_rank"] = float(statistics.median(ranks))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_matches_python_loop(seed):
    g = torch.Generator().manual_seed(seed)
    num_images = 37 + seed
    owner = torch.cat([torch.arange(num_images).repeat_interleave(5), torch.randint(0, num_images, (7,), generator=g)])
    owner = owner[torch.randperm(len(owner), generator=g)]
    # scores correlated with the truth so recalls are neither 0 nor 100; continuous values: no ties
    similarity = torch.randn(num_images, len(owner), generator=g)
    similarity[owner, torch.arange(len(owner))] += 1.5
    got = retrieval_metrics(similarity, owner, ks=(1, 5, 10))
    want = reference(similarity, owner, (1, 5, 10))
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-9), key
    assert 0 < got["t2i_r1"] < 100 and 0 < got["i2t_r1"] < 100


def test_image_without_texts_is_left_out_of_i2t():
    similarity = torch.tensor([[0.9, 0.1, 0.3], [0.2, 0.8, 0.7], [0.5, 0.85, 0.1]])
    owner = torch.tensor([0, 1, 1])  # image 2 owns no text
    got = retrieval_metrics(similarity, owner, ks=(1,))
    assert got == pytest.approx(reference(similarity, owner, (1,)))
    assert got["i2t_r1"] == 100.0 and got["i2t_median_rank"] == 1.0
    assert got["t2i_r1"] == pytest.approx(100 * 2 / 3)  # image 2 outscores text 1's own image


def test_perfect_and_reversed_scores():
    owner = torch.arange(4).repeat_interleave(2)
    perfect = torch.full((4, 8), -1.0)
    perfect[owner, torch.arange(8)] = 1.0 + torch.arange(8) / 100
    got = retrieval_metrics(perfect, owner, ks=(1,))
    assert got["t2i_r1"] == got["i2t_r1"] == 100.0 and got["t2i_median_rank"] == 1.0
    got = retrieval_metrics(-perfect, owner, ks=(1, 4))
    assert got["t2i_r1"] == 0.0 and got["t2i_median_rank"] == 4.0 and got["i2t_median_rank"] == 7.0


def test_bad_input_is_one_line_error():
    with pytest.raises(VLForgeError, match="text_to_image must have shape"):
        retrieval_metrics(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))
    with pytest.raises(VLForgeError, match="outside"):
        retrieval_metrics(torch.zeros(2, 2), torch.tensor([0, 2]))
    with pytest.raises(VLForgeError, match="NaN"):
        retrieval_metrics(torch.tensor([[float("nan")]]), torch.tensor([0]))
