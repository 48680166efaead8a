"""Rewrite training examples from ShapesWorld scene graphs (#12 item 5: "a tiny LM trained on (corrupted caption +
critiques -> clean caption) pairs built from the scene graph").

A record's gt dense caption is corrupted by ``corrupt_words`` (each colour and shape word swapped, with probability
``rate``, for another word of its kind), split into atomic sentences (``RuleBasedDecomposer``), each sentence judged
by the scene-graph critic; the example asks, with a rewrite prompt, for the clean caption from the corrupted one and
the critiques. A corruption that leaves no sentence judged inconsistent gives no example (a caption without an
inconsistent sentence is kept as it is, the model is not asked). ``sentence_examples``: the same per sentence, for
the sentence-scope rewriter (the corrupted sentence and its critique -> the clean sentence).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from vlforge.common.records import ImageRecord
from vlforge.common.shapes.vocabulary import COLOURS, SHAPES
from vlforge.critic.decompose import RuleBasedDecomposer
from vlforge.critic.rewrite_generative import critique_summary, critiques_text, rewrite_prompt
from vlforge.critic.scene_graph_critic import scene_graph_scores

WORD_KINDS = (COLOURS, SHAPES)


def corrupt_words(text: str, rng: random.Random, rate: float, kinds: Sequence[Sequence[str]] = WORD_KINDS) -> str:
    """``text`` with each whole word of ``kinds`` replaced, with probability ``rate``, by another word of its kind
    drawn uniformly (one ``rng.random()`` per word, then one ``rng.choice`` per swap)."""
    kind_of = {word: kind for kind in kinds for word in kind}
    pattern = re.compile(rf"\b({'|'.join(kind_of)})\b")
    return pattern.sub(lambda m: rng.choice([w for w in kind_of[m.group(1)] if w != m.group(1)])
                       if rng.random() < rate else m.group(1), text)


def sentence_examples(record: ImageRecord, clean: str, rng: random.Random, rate: float,
                      prompt: str = "sentence") -> list[dict[str, str]]:
    """The sentence-scope examples (``GenerativeRewriter(scope="sentence")``): each sentence of the gt dense
    caption corrupted apart; one judged inconsistent asks, with its critique, for the clean sentence."""
    examples = []
    for number, sentence in enumerate(RuleBasedDecomposer()(clean)):
        corrupted = corrupt_words(sentence, rng, rate)
        (score,) = scene_graph_scores(record, [corrupted])
        if score.verdict is False:
            examples.append({"key": f"{record.image_id}-{number}", "response": sentence,
                             "instruction": rewrite_prompt(corrupted, critique_summary(score.critique, False),
                                                           prompt)})
    return examples


def rewrite_example(record: ImageRecord, clean: str, rng: random.Random, rate: float, prompt: str = "short",
                    critiqued: str = "inconsistent") -> dict[str, str] | None:
    """``{"key", "instruction", "response"}`` for the record (see the module docstring), or None when the
    corruption left no sentence judged inconsistent."""
    corrupted = corrupt_words(clean, rng, rate)
    sentences = RuleBasedDecomposer()(corrupted)
    scores = scene_graph_scores(record, sentences)
    verdicts = [s.verdict for s in scores]
    if False not in verdicts:
        return None
    critiques = critiques_text(sentences, verdicts, [s.critique for s in scores], critiqued)
    return {"key": record.image_id, "instruction": rewrite_prompt(corrupted, critiques, prompt), "response": clean}
