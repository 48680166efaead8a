"""parse_verdict per issue #12 item 4, with seeded random critiques standing in for property tests."""

import random

import pytest

from vlforge.critic.verdicts import parse_verdict, tally_verdicts, verdict_line


@pytest.mark.parametrize("text, expected", [
    ("Verdict: consistent", True),
    ("Verdict: inconsistent", False),
    ("verdict: CONSISTENT", True),
    ("VERDICT: Inconsistent", False),
    ("**Verdict:** inconsistent", False),
    ("**Verdict: consistent**", True),
    ("*Verdict*: *consistent*", True),
    ("   Verdict:   inconsistent.   ", False),
    ("Verdict: inconsistent (the circle is blue)", False),
    ("Verdict: consistent - every point checks out", True),
    ("Verdict: consistent!", True),
    ("Verdict:consistent", True),
    ("Verdict: consistent with the image", True),
    ("Key points: colour.\n1. The circle is red: yes.\nSummary: all good.\nVerdict: consistent", True),
    ("Verdict: consistent\n...on reflection...\nVerdict: inconsistent", False),
    ("Verdict: inconsistent\nVerdict: consistent", True),
    ("Verdict: inconsistent\r\nsome trailing note", False),
])
def test_verdict_lines(text, expected):
    assert parse_verdict(text) is expected


@pytest.mark.parametrize("text", [
    "",
    "yes",
    "Yes, the eyes are consistent with the background.",
    "The sentence is consistent with the image.",
    "The description is inconsistent.",
    "Summary: consistent",
    "The verdict: consistent",
    "Verdict consistent",
    "Verdict: consistently wrong",
    "Verdict: inconsistently phrased",
    "Verdict: unclear",
    "Verdict:",
    "My verdict: inconsistent",
    "- Verdict: consistent",
    "# Verdict: consistent",
    "Answer yes. Verdict: consistent",  # not at the start of its line
])
def test_no_verdict_line_is_none(text):
    assert parse_verdict(text) is None


def test_a_later_non_verdict_line_does_not_override():
    assert parse_verdict("Verdict: inconsistent\nThis is consistent with the background.") is False


FILLER = ["The circle is red: yes.", "eyes", "consistent with the background", "inconsistent lighting",
          "Key points:", "1. colour", "Summary: checked.", "verdict is hard", "**bold** text", "", "   "]


def _random_critique(rng, verdicts):
    lines = []
    for verdict in verdicts:
        lines += rng.sample(FILLER, rng.randint(0, 4))
        word = ("consistent" if verdict else "inconsistent")
        word = "".join(c.upper() if rng.random() < 0.3 else c for c in word)
        stars = rng.choice(["", "*", "**"])
        tail = rng.choice(["", ".", "!", " (reason given)", ", because the shape matches"])
        lines.append(f"{rng.choice(['', '  '])}{stars}Verdict:{stars} {stars}{word}{stars}{tail}")
    lines += rng.sample(FILLER, rng.randint(0, 4))
    return "\n".join(lines)


def test_random_critiques_take_the_last_verdict():
    rng = random.Random(0)
    for _ in range(500):
        verdicts = [rng.random() < 0.5 for _ in range(rng.randint(0, 3))]
        text = _random_critique(rng, verdicts)
        assert parse_verdict(text) is (verdicts[-1] if verdicts else None), text


def test_verdict_line_round_trips_and_tally_counts_unparsed():
    assert parse_verdict(verdict_line(True)) is True and parse_verdict(verdict_line(False)) is False
    texts = [verdict_line(True), "Verdict: inconsistent", "looks consistent", "yes"]
    assert tally_verdicts(texts) == {"consistent": 1, "inconsistent": 1, "unparsed": 2}
