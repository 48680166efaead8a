"""D_SFT / D_PRO on disk: JSON lines of :class:`QueryPairRow` (every score kept), a summary, and the export to
the PRO authors' training shape ``{"prefix": [...], "suffix": [...], "reward": [...], "sft_index": 0}`` (one
prefix per candidate, candidates best first)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from vlforge.common.errors import VLForgeError
from vlforge.rewriter.query_pairs import QueryPairRow, QueryPairs

SFT_FILE, PRO_FILE, SUMMARY_FILE = "d_sft.jsonl", "d_pro.jsonl", "summary.json"


def _write_rows(rows: list[QueryPairRow], path: Path) -> None:
    partial = path.with_suffix(".partial")
    with open(partial, "w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row.to_dict(), ensure_ascii=False) + "\n")
    partial.replace(path)


def write_query_pairs(pairs: QueryPairs, output_dir: str | os.PathLike, settings: dict | None = None) -> Path:
    """``d_sft.jsonl``, ``d_pro.jsonl`` and ``summary.json`` (counts, skipped query ids, ``settings``)."""
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    _write_rows(pairs.sft, folder / SFT_FILE)
    _write_rows(pairs.pro, folder / PRO_FILE)
    (folder / SUMMARY_FILE).write_text(json.dumps({**pairs.summary(), "settings": settings or {}}, indent=2))
    return folder


def read_query_pairs(path: str | os.PathLike) -> list[QueryPairRow]:
    """Rows of a ``d_sft.jsonl`` / ``d_pro.jsonl`` file; a malformed line is a one-line error naming it."""
    rows = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                rows.append(QueryPairRow.from_dict(json.loads(line)))
            except (json.JSONDecodeError, TypeError, KeyError) as exc:
                raise VLForgeError(f"{path}:{number}: not a query-pair row ({exc})") from None
    return rows


def pro_example(row: QueryPairRow, reward_scale: float = 1.0, prompt: str = "{query}") -> dict:
    """One row in the PRO authors' shape: the candidates best first, reward = scale · retriever score."""
    candidates = sorted(row.candidates, key=lambda c: -c.score)
    prefix = prompt.format(query=row.query)
    return {"prefix": [prefix] * len(candidates), "suffix": [c.text for c in candidates],
            "reward": [reward_scale * c.score for c in candidates], "sft_index": 0}


def export_pro_jsonl(rows: list[QueryPairRow], path: str | os.PathLike, reward_scale: float = 1.0,
                     prompt: str = "{query}") -> int:
    """Write ``rows`` (with at least 2 candidates each) as PRO training lines; returns the number written."""
    written = 0
    with open(path, "w", encoding="utf-8") as out:
        for row in rows:
            if len(row.candidates) < 2:
                raise VLForgeError(f"query {row.query_id}: PRO needs at least 2 candidates, has {len(row.candidates)}")
            out.write(json.dumps(pro_example(row, reward_scale, prompt), ensure_ascii=False) + "\n")
            written += 1
    return written
