"""Verdict-accuracy tables of `vlforge-critic evaluate` against hand counts; unscored counts as wrong."""

import pytest

from vlforge.critic.evaluate import accuracy_table
from vlforge.critic.shapes_critic_data import CriticExample


def _example(sentence, consistent, error_type):
    return CriticExample("img", sentence, "", consistent, error_type)


def test_accuracy_table_by_hand():
    examples = [_example("There is a red circle.", True, "none"), _example("There is a blue star.", True, "none"),
                _example("There is a green square.", False, "absent_object"),
                _example("There are two shapes.", False, "count")]
    table = accuracy_table(examples, [True, None, False, True])
    assert table["accuracy"] == 50.0 and table["on_true"] == 50.0 and table["on_false"] == 50.0
    assert table["per_error_type"] == {"absent_object": 100.0, "count": 0.0, "none": 50.0}
    assert table["unscored"] == 1 and table["sentences"] == 4
    assert table["per_template"]["none: there is a C S"] == {"accuracy": 50.0, "sentences": 2}
    assert table["per_template"]["count: there are N shapes."]["accuracy"] == pytest.approx(0.0)
