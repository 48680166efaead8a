"""Rewrite agents of the challenge-response loop (query-rewriter paper §3.1, Fig. 2 a.2): given a low-quality
query, its right image and the wrong images the retriever recalled above it, propose rewrites that name what the
retriever failed to see.

``SceneGraphOracleAgent`` is the ShapesWorld upper bound: it reads the scene graphs instead of looking at pixels.
It translates the query's target object into the canonical vocabulary ("a red circle" for "crimson disc"), then
adds the details of the right scene that the recalled wrong scenes lack most often (size, region, the other
objects, the background), one more detail per turn, beside the full description. With ``stated_only`` it adds
only what the query itself says (its coarse region, the neighbour it names, its backdrop) in canonical words: a
rewrite a text-only policy can learn, since nothing in it comes from the image. The MLLM agent with the paper's
prompts is ``lm_agent.LMRewriteAgent``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from vlforge.common.records import ImageRecord
from vlforge.common.shapes.grammar import article, join_list, region_phrase
from vlforge.common.shapes.queries import VAGUE_REGIONS, coarse_region
from vlforge.rewriter.query_words import named_objects


@dataclass
class QueryCase:
    """One query to rewrite: its id, text, the right image's record and (ShapesWorld) the object it names."""

    query_id: str
    text: str
    record: ImageRecord
    target: int | None = None


class RewriteAgent(Protocol):
    name: str

    def propose(self, case: QueryCase, wrong: list[ImageRecord], turn: int) -> list[str]:
        """Rewrites of ``case.text`` for this turn (1-based), having seen the wrongly recalled images."""
        ...


@dataclass
class _Detail:
    kind: str
    words: str
    holds_in: Any  # scene -> bool: whether a wrong scene shows this detail too

    def distinguishes(self, scenes: list[dict[str, Any]]) -> int:
        return sum(not self.holds_in(scene) for scene in scenes)


def _has(scene: dict[str, Any], **attributes: str) -> bool:
    return any(all(obj[k] == v for k, v in attributes.items()) for obj in scene["objects"])


def _details(scene: dict[str, Any], target: dict[str, Any]) -> list[_Detail]:
    colour, shape = target["colour"], target["shape"]
    details = [
        _Detail("size", target["size"], lambda s: _has(s, colour=colour, shape=shape, size=target["size"])),
        _Detail("region", region_phrase(target["region"]),
                lambda s: _has(s, colour=colour, shape=shape, region=target["region"])),
    ]
    for other in scene["objects"]:
        if other["id"] != target["id"]:
            words = f"{other['colour']} {other['shape']}"
            details.append(_Detail("object", f"{article(words)} {words}",
                                   lambda s, o=other: _has(s, colour=o["colour"], shape=o["shape"])))
    background = scene["background"]["colour"]
    details.append(_Detail("background", f"on a {background} background",
                           lambda s: s["background"]["colour"] == background))
    return details


def _stated_details(scene: dict[str, Any], target: dict[str, Any], text: str) -> list[_Detail]:
    """The details ``text`` states, in canonical words: the coarse region of a vague query ("near the top" → "at
    the top"), the objects it names after the first ("… next to an azure lozenge" → "a blue diamond"), and its
    backdrop ("on a grey backdrop" → "on a grey background")."""
    colour, shape = target["colour"], target["shape"]
    details = [_Detail("region", region_phrase(coarse),
                       lambda s, c=coarse: _has_coarse(s, colour, shape, c))
               for coarse, phrase in VAGUE_REGIONS.items() if phrase in text]
    for other_colour, other_shape in named_objects(text)[1:]:
        words = f"{other_colour} {other_shape}"
        details.append(_Detail("object", f"{article(words)} {words}",
                               lambda s, c=other_colour, h=other_shape: _has(s, colour=c, shape=h)))
    background = scene["background"]["colour"]
    if f"{background} backdrop" in text:
        details.append(_Detail("background", f"on a {background} background",
                               lambda s: s["background"]["colour"] == background))
    return details


def _has_coarse(scene: dict[str, Any], colour: str, shape: str, coarse: str) -> bool:
    return any(o["colour"] == colour and o["shape"] == shape and coarse_region(o["region"]) == coarse
               for o in scene["objects"])


def _render(target: dict[str, Any], chosen: list[_Detail]) -> str:
    kinds = {d.kind for d in chosen}
    words = " ".join(w for w in (target["size"] if "size" in kinds else None, target["colour"], target["shape"]) if w)
    parts = [f"{article(words)} {words}"]
    parts += [d.words for d in chosen if d.kind == "region"]
    others = [d.words for d in chosen if d.kind == "object"]
    if others:
        parts.append(f"and {join_list(others)}")
    parts += [d.words for d in chosen if d.kind == "background"]
    return " ".join(parts)


class SceneGraphOracleAgent:
    """The upper-bound agent on ShapesWorld: rewrites from the scene graphs of the right and wrong images.

    Turn t proposes the target object with the t−1 most distinguishing details, the target with each of the t most
    distinguishing details alone, and the target with every detail (the full description). A detail's
    distinguishing power is the number of wrong scenes in which it does not hold; ties keep the order size,
    region, other objects, background.
    """

    name = "scene_graph_oracle"

    def __init__(self, stated_only: bool = False) -> None:
        self.stated_only = stated_only

    def propose(self, case: QueryCase, wrong: list[ImageRecord], turn: int) -> list[str]:
        scene = case.record.meta.get("scene_graph")
        if scene is None or case.target is None:
            return []
        target = scene["objects"][case.target]
        wrong_scenes = [r.meta["scene_graph"] for r in wrong if "scene_graph" in r.meta]
        details = _stated_details(scene, target, case.text) if self.stated_only else _details(scene, target)
        ranked = sorted(details, key=lambda d: -d.distinguishes(wrong_scenes))  # stable: ties keep order
        proposals = [_render(target, ranked[:turn - 1])]
        proposals += [_render(target, [d]) for d in ranked[:turn]]
        proposals.append(_render(target, ranked))
        return list(dict.fromkeys(proposals))
