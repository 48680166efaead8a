"""The scene-graph critic: each sentence judged by ``critique.write_critique`` against the record's ShapesWorld scene
graph, the critique written in Fig. 14's structure with its summary of what the image shows. It stands in for a
perfect trained critic, so that the rewrite step can be trained (``shapes_rewrite_data``) and measured apart from
a critic's errors (``vlforge-critic predict --model.init_args.critic_source scene_graph``), as the rewriter's
``SceneGraphOracleAgent`` is the upper-bound agent there. A sentence with no readable fact is unscored."""

from __future__ import annotations

from collections.abc import Sequence

from vlforge.common.errors import VLForgeError
from vlforge.common.records import ImageRecord
from vlforge.critic.critique import write_critique
from vlforge.critic.scoring import SentenceScore

SCENE_GRAPH = "scene_graph"


def scene_graph_scores(record: ImageRecord, sentences: Sequence[str]) -> list[SentenceScore]:
    """One score per sentence (verdict, no probability, the critique); a one-line error for a record without a
    scene graph."""
    scene = record.meta.get("scene_graph")
    if scene is None:
        raise VLForgeError(f"record {record.image_id}: no scene graph for the scene-graph critic")
    scores = []
    for sentence in sentences:
        written = write_critique(sentence, scene)
        scores.append(SentenceScore(None) if written is None else SentenceScore(written[1], None, written[0]))
    return scores
