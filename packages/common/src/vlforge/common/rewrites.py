"""Rewritten queries in the store: the contract between the query rewriter that writes them (vlforge-rewriter
predict) and the retrieval evaluation and CLIP fine-tuning that read them (vlforge-vlm).

A query is a caption of kind ``query``; its id is ``<image id>#<index of the caption in the record>`` (the index
never changes: captions are only appended). A rewriter stores its rewrites as captions of kind ``query`` with the
rewriter's name as source; the provenance lists the queries a rewrite stands for (two queries of one image can be
rewritten to the same text, which the store keeps once):

    provenance["queries"] = [{"query_id": "<image id>#<k>", "original": "<the query's text>"}, ...]
"""

from __future__ import annotations

from vlforge.common.records import Caption, ImageRecord

QUERY_KIND = "query"
QUERIES_KEY = "queries"


def query_id(image_id: str, index: int) -> str:
    """The id of the query that is caption ``index`` of image ``image_id``."""
    return f"{image_id}#{index}"


def queries_of(record: ImageRecord, source: str, kind: str = QUERY_KIND) -> list[tuple[str, Caption]]:
    """(query id, caption) of every caption of ``source`` and ``kind`` of the record, in stored order."""
    return [(query_id(record.image_id, k), c) for k, c in enumerate(record.captions)
            if c.source == source and c.kind == kind]


def rewrites_by_query(captions: ImageRecord | list[Caption], rewriter: str) -> dict[str, str]:
    """Query id -> its rewrite by ``rewriter`` among a record's captions (only the queries that have one)."""
    found: dict[str, str] = {}
    for caption in _of(captions, rewriter):
        for entry in caption.provenance.get(QUERIES_KEY) or []:
            found.setdefault(str(entry.get("query_id")), caption.text)
    return found


def rewrites_by_text(captions: ImageRecord | list[Caption], rewriter: str) -> dict[str, str]:
    """Original text -> its rewrite by ``rewriter`` among a record's captions (for swapping a drawn training
    caption by its rewrite)."""
    found: dict[str, str] = {}
    for caption in _of(captions, rewriter):
        for entry in caption.provenance.get(QUERIES_KEY) or []:
            if entry.get("original") is not None:
                found.setdefault(str(entry["original"]), caption.text)
    return found


def _of(captions: ImageRecord | list[Caption], source: str) -> list[Caption]:
    listed = captions.captions if isinstance(captions, ImageRecord) else captions
    return [c for c in listed if c.source == source]
