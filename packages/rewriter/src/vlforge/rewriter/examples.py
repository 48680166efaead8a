"""Training examples of the rewriter's three steps from D_SFT / D_PRO rows (:mod:`vlforge.rewriter.pair_files`), as
the plain dicts ``vlforge.common.lm`` collates: the instruction is the query in ``INSTRUCTION``, the response a
rewrite.

- SFT (Eq. 1): ``{key, instruction, response}`` with the row's best rewrite;
- PRO (Eq. 3): ``{key, instruction, responses, rewards}`` with n rewrites, best first, and their retriever scores;
- PPO (Eqs. 4-5): ``{key, instruction, query, image_id}``, the query whose rewrites are rolled out and rewarded
  against its right image.
"""

from __future__ import annotations

from typing import Any

from vlforge.common.errors import VLForgeError
from vlforge.rewriter.query_pairs import Candidate, QueryPairRow

INSTRUCTION = "Rewrite this image search query so that a retriever finds the image: {query}"


def instruction_of(query: str, template: str = INSTRUCTION) -> str:
    if "{query}" not in template:
        raise VLForgeError(f"instruction template {template!r} has no '{{query}}' field")
    return template.replace("{query}", query)


def sft_example(row: QueryPairRow, template: str = INSTRUCTION) -> dict[str, Any]:
    best = max(row.candidates, key=lambda c: c.score)
    return {"key": row.query_id, "instruction": instruction_of(row.query, template), "response": best.text}


def spread_candidates(candidates: list[Candidate], n: int) -> list[Candidate]:
    """n of the candidates, best first, evenly spread over their ranking (the best and the worst always kept)."""
    ranked = sorted(candidates, key=lambda c: -c.score)
    if n < 2 or len(ranked) < n:
        raise VLForgeError(f"cannot pick {n} of {len(ranked)} candidates (PRO needs n >= 2)")
    if n == len(ranked):
        return ranked
    return [ranked[round(i * (len(ranked) - 1) / (n - 1))] for i in range(n)]


def pro_example(row: QueryPairRow, n: int, template: str = INSTRUCTION) -> dict[str, Any]:
    chosen = spread_candidates(row.candidates, n)
    return {"key": row.query_id, "instruction": instruction_of(row.query, template),
            "responses": [c.text for c in chosen], "rewards": [c.score for c in chosen]}


def query_example(row: QueryPairRow, template: str = INSTRUCTION) -> dict[str, Any]:
    return {"key": row.query_id, "instruction": instruction_of(row.query, template), "query": row.query,
            "image_id": row.image_id}
