"""Linear probing (CLIP's protocol): multinomial logistic regression (scikit-learn, L-BFGS, L2 strength
1/C) on frozen image features, fitted on one split and scored on another. ShapesWorld labels are those of
:func:`vlforge.vlm.zero_shot.shapes_labels`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from sklearn.linear_model import LogisticRegression

from vlforge.common.errors import VLForgeError
from vlforge.vlm.evaluation import SplitEncoding
from vlforge.vlm.zero_shot import SHAPES_TASKS, shapes_labels


def linear_probe(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                 test_labels: torch.Tensor, inverse_regularization: float = 1.0,
                 max_iter: int = 1000) -> dict[str, float]:
    """Fit ``LogisticRegression(C=inverse_regularization)`` on the training features and return the test
    ``accuracy`` (percent) with ``num_train`` / ``num_test``."""
    if len(set(train_labels.tolist())) < 2:
        raise VLForgeError(f"linear probe needs at least 2 classes among its {len(train_labels)} "
                           "training labels")
    if test_labels.numel() == 0:
        raise VLForgeError("linear probe needs at least one test image")
    classifier = LogisticRegression(C=inverse_regularization, max_iter=max_iter)
    classifier.fit(train_features.float().numpy(), train_labels.numpy())
    predictions = torch.from_numpy(classifier.predict(test_features.float().numpy()))
    accuracy = 100.0 * (predictions == test_labels).double().mean().item()
    return {"accuracy": accuracy, "num_train": int(train_labels.numel()),
            "num_test": int(test_labels.numel())}


def shapes_linear_probe(train: SplitEncoding, test: SplitEncoding, tasks: Sequence[str] = SHAPES_TASKS,
                        object_rule: str = "largest",
                        inverse_regularization: float = 1.0) -> dict[str, dict[str, float]]:
    """Linear-probe accuracy per ShapesWorld task, fitted on ``train`` and scored on ``test``."""
    result = {}
    for task in tasks:
        fit, score = shapes_labels(train, task, object_rule), shapes_labels(test, task, object_rule)
        result[task] = linear_probe(train.image_features[fit.kept], fit.labels,
                                    test.image_features[score.kept], score.labels, inverse_regularization)
    return result
