"""Zero-shot top-k accuracy and prompt ensembling against a direct implementation on random embeddings."""

import pytest
import torch

from vlforge.common.errors import VLForgeError
from vlforge.common.metrics.zero_shot import class_embeddings, zero_shot_accuracy


def reference(images, prompts, labels, ks):
    classes = []
    for c in range(prompts.shape[0]):
        unit = [p / p.norm() for p in prompts[c]]
        mean = sum(unit) / len(unit)
        classes.append(mean / mean.norm())
    out = {}
    for k in ks:
        hits = 0
        for image, label in zip(images, labels.tolist()):
            scores = [float(image / image.norm() @ w) for w in classes]
            top = sorted(range(len(classes)), key=lambda c: -scores[c])[:k]
            hits += label in top
        out[f"top{k}"] = 100.0 * hits / len(labels)
    return out


@pytest.mark.parametrize("seed", range(3))
def test_matches_reference(seed):
    g = torch.Generator().manual_seed(seed)
    num_classes, num_prompts, dim = 9, 4, 16
    prompts = torch.randn(num_classes, num_prompts, dim, generator=g)
    labels = torch.randint(0, num_classes, (60,), generator=g)
    # images near their class's mean prompt, with noise: accuracy strictly between 0 and 100
    images = prompts.mean(1)[labels] + 1.2 * torch.randn(60, dim, generator=g)
    got = zero_shot_accuracy(images, prompts, labels, ks=(1, 5))
    want = reference(images, prompts, labels, (1, 5))
    assert got == pytest.approx(want)
    assert 0 < got["top1"] < got["top5"] <= 100


def test_ensembling_is_the_normalised_mean_of_unit_prompts():
    prompts = torch.tensor([[[3.0, 0.0], [0.0, 0.5]]])
    assert torch.allclose(class_embeddings(prompts), torch.tensor([[2 ** -0.5, 2 ** -0.5]]))
    single = torch.tensor([[0.0, 2.0]])
    assert torch.allclose(class_embeddings(single), torch.tensor([[0.0, 1.0]]))


def test_errors():
    with pytest.raises(VLForgeError, match="top-5 accuracy needs at least 5 classes, got 3"):
        zero_shot_accuracy(torch.randn(4, 8), torch.randn(3, 2, 8), torch.zeros(4, dtype=torch.long))
    with pytest.raises(VLForgeError, match="do not match"):
        zero_shot_accuracy(torch.randn(4, 7), torch.randn(3, 2, 8), torch.zeros(4, dtype=torch.long), ks=(1,))
