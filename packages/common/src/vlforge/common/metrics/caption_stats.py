"""Caption length and word-frequency statistics per caption source (alt_text, gt, a captioner's name, ...)."""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

from vlforge.common.errors import VLForgeError

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def caption_lengths(texts_by_source: Mapping[str, Sequence[str]],
                    count_tokens: Callable[[str], int] = lambda text: len(text.split()),
                    ) -> dict[str, list[int]]:
    """Each caption's length per source; whitespace tokens unless ``count_tokens`` is given."""
    return {source: [count_tokens(t) for t in texts] for source, texts in texts_by_source.items()}


def length_stats(lengths_by_source: Mapping[str, Sequence[int]]) -> dict[str, dict[str, float]]:
    """Per source: count, mean, std (population), min, median, p90 (nearest rank), max of caption lengths."""
    out = {}
    for source, lengths in lengths_by_source.items():
        if not lengths:
            raise VLForgeError(f"source {source!r} has no captions")
        ordered = sorted(lengths)
        out[source] = {"count": len(ordered), "mean": statistics.fmean(ordered),
                       "std": statistics.pstdev(ordered), "min": ordered[0],
                       "median": float(statistics.median(ordered)),
                       "p90": ordered[max(0, -(-9 * len(ordered) // 10) - 1)], "max": ordered[-1]}
    return out


def word_frequencies(texts_by_source: Mapping[str, Sequence[str]], top_k: int | None = 20,
                     ) -> dict[str, dict[str, object]]:
    """Per source: ``top`` (the ``top_k`` most frequent lower-cased words with counts, ties broken alphabetically),
    ``vocabulary_size`` (distinct words), ``num_words`` and ``type_token_ratio``."""
    out: dict[str, dict[str, object]] = {}
    for source, texts in texts_by_source.items():
        counts = Counter(w for t in texts for w in _WORD.findall(t.lower()))
        total = sum(counts.values())
        top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]
        out[source] = {"top": [[w, c] for w, c in top], "vocabulary_size": len(counts), "num_words": total,
                       "type_token_ratio": len(counts) / total if total else 0.0}
    return out
