"""Linear probe: the fitted classifier minimises the L2-regularised multinomial logistic loss (checked against
a direct torch implementation); separable features are probed perfectly; ShapesWorld splits; bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression

from vlforge.common.errors import VLForgeError
from vlforge.vlm.evaluation import encode_split
from vlforge.vlm.linear_probe import linear_probe, shapes_linear_probe
from vlforge.vlm.models import ContrastiveModel, OpenClipImageTower, OpenClipTextTower
from vlforge.vlm.zero_shot import shapes_labels


def _blobs(n: int, classes: int, dim: int, spread: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=torch.Generator().manual_seed(99))
    labels = torch.randint(classes, (n,), generator=generator)
    return centres[labels] + spread * torch.randn(n, dim, generator=generator), labels


def _direct_predictions(train_x, train_y, test_x, classes: int, c: float) -> torch.Tensor:
    """argmin_{W,b} 0.5 ||W||^2 + C * sum_n CE(W x_n + b, y_n) by L-BFGS (scikit-learn's multinomial
    objective, intercept unpenalised), then argmax of the test logits."""
    x, y = train_x.double(), train_y
    weight = torch.zeros(classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=100, tolerance_grad=1e-9, tolerance_change=1e-12,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = 0.5 * weight.pow(2).sum() + c * F.cross_entropy(x @ weight.T + bias, y, reduction="sum")
        loss.backward()
        return loss

    optimizer.step(closure)
    return (test_x.double() @ weight.detach().T + bias.detach()).argmax(1)


def test_probe_is_the_regularised_logistic_regression_optimum():
    train_x, train_y = _blobs(300, 4, 8, spread=1.5, seed=0)
    test_x, test_y = _blobs(200, 4, 8, spread=1.5, seed=1)
    result = linear_probe(train_x, train_y, test_x, test_y, inverse_regularization=0.5)
    direct = _direct_predictions(train_x, train_y, test_x, classes=4, c=0.5)
    direct_accuracy = 100.0 * (direct == test_y).double().mean().item()
    assert result["accuracy"] == pytest.approx(direct_accuracy, abs=1.0)  # at most 2 of 200 on the boundary
    assert 40.0 < result["accuracy"] < 100.0  # overlapping blobs: neither trivial nor hopeless
    assert result["num_train"] == 300 and result["num_test"] == 200


def test_separable_features_are_probed_perfectly_and_shuffled_labels_are_not():
    train_x, train_y = _blobs(120, 3, 6, spread=0.05, seed=2)
    test_x, test_y = _blobs(60, 3, 6, spread=0.05, seed=3)
    assert linear_probe(train_x, train_y, test_x, test_y)["accuracy"] == 100.0
    shuffled = train_y[torch.randperm(120, generator=torch.Generator().manual_seed(4))]
    assert linear_probe(train_x, shuffled, test_x, test_y)["accuracy"] < 75.0


def test_shapes_probe_fits_one_split_and_scores_another(shapes_store, tiny_open_clip):
    torch.manual_seed(0)
    model = ContrastiveModel(OpenClipImageTower(tiny_open_clip), OpenClipTextTower(tiny_open_clip)).eval()
    train, test = (encode_split(model, shapes_store, split, image_size=32) for split in ("pool", "test"))
    result = shapes_linear_probe(train, test, ["colour", "count"])
    for task in ("colour", "count"):
        fit, score = shapes_labels(train, task), shapes_labels(test, task)
        assert result[task]["num_train"] == len(fit.kept)
        assert result[task]["num_test"] == len(score.kept)
        # reference: scikit-learn's classifier fitted directly on the kept rows, scored on the test rows
        classifier = LogisticRegression(C=1.0, max_iter=1000).fit(train.image_features[fit.kept].numpy(),
                                                                  fit.labels.numpy())
        predicted = classifier.predict(test.image_features[score.kept].numpy())
        assert result[task]["accuracy"] == pytest.approx(100.0 * (predicted == score.labels.numpy()).mean())


def test_bad_probe_input_is_a_one_line_error():
    features = torch.randn(5, 4)
    with pytest.raises(VLForgeError, match="at least 2 classes among its 5 training labels"):
        linear_probe(features, torch.zeros(5, dtype=torch.long), features, torch.zeros(5, dtype=torch.long))
    with pytest.raises(VLForgeError, match="at least one test image"):
        linear_probe(features, torch.tensor([0, 1, 0, 1, 0]), features[:0], torch.zeros(0, dtype=torch.long))
