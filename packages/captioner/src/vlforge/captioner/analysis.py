"""Caption analysis per source (MLLM-augmented paper, section 3.3 and appendix): what several captioners
wrote.

For every caption source of a store (alt_text, gt, each captioner; optionally one split, optionally some
sources), over the non-empty captions:

- lengths in words: count, mean, std, min, median, p90, max and a histogram (the paper's Fig. 4a);
- word statistics: the most frequent words and the most frequent content words (stop words removed; the
  paper's Fig. 3 counts nouns, which needs a part-of-speech tagger that vlforge does not ship), vocabulary
  size, type/token ratio;
- CHAIR_i / CHAIR_s against the ShapesWorld scene graph (``meta["scene_graph"]``) where the images have one;
- CLIP score (cosine similarity of the image and caption embeddings, vlforge.vlm.scoring; the paper's Fig. 8b)
  when a CLIP is given (anything vlforge.vlm.loading.load_clip reads; a bare open_clip weights file with its config
  name), with a histogram per source; otherwise skipped with a note in the JSON.

Empty captions are counted (``empty``) but left out of every statistic. Output: ``analysis.json``,
``lengths.png``, ``words.png``, ``content_words.png`` and ``clip_scores.png`` in the output folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vlforge.common.atomic_file import atomic_output
from vlforge.common.errors import VLForgeError
from vlforge.common.metrics import (
    caption_lengths,
    chair,
    length_stats,
    plot_length_histograms,
    plot_word_frequencies,
    scene_objects,
    word_frequencies,
    write_metrics,
)
from vlforge.common.progress import track
from vlforge.common.store import CaptionStore
from vlforge.vlm.loading import load_clip
from vlforge.vlm.scoring import ClipScorer

STOP_WORDS = frozenset(
    "a an the and or but of in on at to for with by from as is are was were be been being it its this"
    " that these those there here has have had do does did not no yes very into onto over under near next"
    " than then so such which who whom whose what where when while also can could will would may might"
    " shall should some any each all both one two three four image picture photo shows showing shown see"
    " seen".split()
)
EXCLUDED_KINDS = ("negative", "query")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def content_words(text: str) -> str:
    """``text`` without stop words (lower-cased words joined by spaces)."""
    return " ".join(w for w in _WORD.findall(text.lower()) if w not in STOP_WORDS)


def caption_statistics(texts_by_source: dict[str, list[str]], top_k: int = 20) -> dict[str, Any]:
    """``lengths`` (words), ``words`` and ``content_words`` (frequencies, vocabulary size, type/token ratio) per
    source over its non-empty captions (a source with none has no ``lengths`` entry)."""
    texts = {s: [t for t in v if t.strip()] for s, v in texts_by_source.items()}
    return {"lengths": length_stats(caption_lengths({s: t for s, t in texts.items() if t})),
            "words": word_frequencies(texts, top_k),
            "content_words": word_frequencies({s: [content_words(t) for t in v] for s, v in texts.items()}, top_k)}


def collect_captions(
    store: CaptionStore, split: str | None = None, sources: Sequence[str] | None = None
) -> dict[str, list[tuple[str, str]]]:
    """Per label, the (image id, caption text) pairs of the store (one split, some sources), empty ones
    included.

    The label is the source, or ``source:kind`` for a source with captions of several kinds (ShapesWorld's gt
    short / descriptive / dense); negatives and retrieval queries are not captions and are left out."""
    by_key: dict[tuple[str, str], list[tuple[str, str]]] = {}
    counts = store.counts()
    total = counts["splits"].get(split, 0) if split is not None else counts["images"]
    for record in track(store.iter_records(split=split), "read captions", total, "records"):
        for caption in record.captions:
            if caption.kind in EXCLUDED_KINDS or (sources is not None and caption.source not in sources):
                continue
            by_key.setdefault((caption.source, caption.kind), []).append((record.image_id, caption.text))
    found = {source for source, _ in by_key}
    missing = sorted(set(sources or ()) - found)
    if missing:
        raise VLForgeError(
            f"store {store.path!r} has no captions of source {missing[0]!r}"
            + (f" in split {split!r}" if split else "")
        )
    if not by_key:
        raise VLForgeError(
            f"store {store.path!r} has no captions" + (f" in split {split!r}" if split else "")
        )
    kinds = {source: sum(1 for s, _ in by_key if s == source) for source in found}
    return {
        (source if kinds[source] == 1 else f"{source}:{kind}"): pairs
        for (source, kind), pairs in sorted(by_key.items())
    }


def chair_by_source(store: CaptionStore, captions: dict[str, list[tuple[str, str]]]) -> dict[str, Any]:
    """CHAIR per source over the captions whose image has a ShapesWorld scene graph."""
    objects: dict[str, list[str] | None] = {}
    out: dict[str, Any] = {}
    for source, pairs in captions.items():
        texts, scenes = [], []
        for image_id, text in pairs:
            if image_id not in objects:
                graph = store.get(image_id).meta.get("scene_graph")
                objects[image_id] = scene_objects(graph) if graph else None
            if objects[image_id] is not None:
                texts.append(text)
                scenes.append(objects[image_id])
        if texts:
            out[source] = {**chair(texts, scenes).summary(), "captions": len(texts)}
    return out


def clip_scores(store: CaptionStore, pairs: list[tuple[str, str]], scorer: ClipScorer,
                batch_size: int = 64) -> list[float]:
    """CLIP score (vlforge.vlm.scoring.ClipScorer.similarity) of each (image id, text) pair."""
    scores: list[float] = []
    for start in track(range(0, len(pairs), batch_size), "CLIP score", unit="batches"):
        chunk = pairs[start : start + batch_size]
        images = [store.load_image(store.get(image_id)) for image_id, _ in chunk]
        scores += scorer.similarity(images, [text for _, text in chunk]).tolist()
    return scores


def _plot_clip_scores(scores: dict[str, list[float]], path: Path) -> Path:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3.5))
    axes = figure.add_subplot()
    for source, values in scores.items():
        axes.hist(values, bins=30, range=(-1, 1), alpha=0.5, label=source)
    axes.set_xlabel("CLIP score (cosine similarity)")
    axes.set_ylabel("captions")
    axes.legend(fontsize="small")
    figure.tight_layout()
    with atomic_output(path, binary=True) as f:
        figure.savefig(f, format="png", dpi=120)
    return path


def analyze(
    store_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    split: str | None = None,
    sources: Sequence[str] | None = None,
    top_k: int = 20,
    clip_model: str | None = None,
    clip_checkpoint: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Write the analysis of the store's captions to ``out_dir`` (JSON + PNG) and return the JSON content."""
    if clip_model is not None and clip_checkpoint is None:
        raise VLForgeError("clip_model names the open_clip config of a weights file: pass clip_checkpoint too")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with CaptionStore(store_path) as store:
        captions = collect_captions(store, split, sources)
        texts = {s: [t for _, t in pairs if t.strip()] for s, pairs in captions.items()}
        nonempty = {s: [(i, t) for i, t in pairs if t.strip()] for s, pairs in captions.items()}
        statistics = caption_statistics(texts, top_k)
        report: dict[str, Any] = {
            "store": os.path.abspath(os.fspath(store_path)),
            "split": split,
            "sources": {
                s: {"captions": len(p), "empty": len(p) - len(texts[s])} for s, p in captions.items()
            },
            **statistics,
            "chair": chair_by_source(store, nonempty),
        }
        plot_length_histograms(caption_lengths({s: t for s, t in texts.items() if t}), out / "lengths.png")
        plot_word_frequencies(statistics["words"], out / "words.png")
        plot_word_frequencies(statistics["content_words"], out / "content_words.png")
        if clip_checkpoint is not None:
            scorer = ClipScorer(load_clip(clip_checkpoint, open_clip_model=clip_model).eval())
            scores = {s: clip_scores(store, p, scorer) for s, p in nonempty.items() if p}
            report["clip_score"] = {
                "model": clip_model,
                "checkpoint": os.fspath(clip_checkpoint),
                **{
                    s: {"mean": sum(v) / len(v), "min": min(v), "max": max(v), "count": len(v)}
                    for s, v in scores.items()
                },
            }
            _plot_clip_scores(scores, out / "clip_scores.png")
        else:
            report["clip_score"] = {"skipped": "no CLIP given (clip_checkpoint)"}
    write_metrics(out, report, "analysis.json")
    return report
