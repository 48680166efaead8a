"""The captioner-description agent (#14 item 2): anchor by MiniLM similarity to the query, the other sentences of
the right image's description ranked by how many wrong images' descriptions lack them, proposals per turn."""

from __future__ import annotations

import pytest

from vlforge.common.records import Caption, ImageRecord
from vlforge.rewriter.agents import QueryCase
from vlforge.rewriter.description_agent import CaptionerDescriptionAgent
from vlforge.rewriter.similarity import SentenceSimilarity

CAPTIONER = "tiny_llava_dense"


def _record(image_id: str, description: str | None) -> ImageRecord:
    captions = [Caption("crimson disc", source="gt", kind="query")]
    if description is not None:
        captions.append(Caption(description, source=CAPTIONER, kind="dense"))
    return ImageRecord(image_id, "pref", 32, 32, captions, image_bytes=b"x")


@pytest.fixture(scope="module")
def agent() -> CaptionerDescriptionAgent:
    return CaptionerDescriptionAgent(CAPTIONER, SentenceSimilarity().pairwise, kind="dense")


def test_anchor_and_distinguishing_sentences_per_turn(agent):
    right = _record("r", "A blue square on the left. A large red circle at the top. The background is grey.")
    wrong = [_record("w1", "A blue square on the left. A green star. The background is white."),
             _record("w2", "A blue square on the left. The background is grey."),
             _record("w3", None)]
    case = QueryCase("r#0", "crimson disc", right)
    anchor = "A large red circle at the top."
    # "The background is grey." is in w2's description, "A blue square on the left." in both: grey ranks first
    assert agent.propose(case, wrong, 1) == [anchor, f"{anchor} The background is grey.", right.captions[1].text]
    assert agent.propose(case, wrong, 2) == [
        f"{anchor} The background is grey.",
        f"{anchor} A blue square on the left.",
        right.captions[1].text,
    ]


def test_no_description_no_proposal(agent):
    assert agent.propose(QueryCase("r#0", "crimson disc", _record("r", None)), [], 1) == []
