"""A static caption browser: one HTML page (no server, no CDN, no external file but its own images/ folder) showing
each image of a store beside its captions, grouped by source and kind.

- provenance (model, prompt, decoding, time) on hover of each caption;
- scores where present: `clip_score`; CHAIR flags — from `scores["hallucinated"]` (words) or, for an image with a
  ShapesWorld scene graph, computed here with `vlforge.common.metrics.chair` — with the hallucinated words marked;
  critic verdicts per sentence (`scores["critic"]`: a list of `{"sentence", "verdict"}` or `[sentence, verdict]`,
  a verdict being true / "correct" or false / anything else); any other scalar score as `name value`;
- a checkbox per source to hide or show its captions, and pages of `page_size` images (plain JavaScript inside the
  page; without JavaScript every image shows). Every text of the store is HTML-escaped.

    write_browser("data/shapes.lmdb", "browse/", split="val", limit=200, sources=["gt", "llava_short"])
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vlforge.common.atomic_file import atomic_folder
from vlforge.common.errors import VLForgeError
from vlforge.common.metrics.chair import chair, scene_objects
from vlforge.common.progress import track
from vlforge.common.records import Caption, ImageRecord
from vlforge.common.shapes.vocabulary import SHAPE_SYNONYMS
from vlforge.common.store import CaptionStore

THUMBNAIL_PX = 192
_WORD = re.compile(r"[A-Za-z]+")
_CANONICAL = {w.lower(): name for name, words in SHAPE_SYNONYMS.items() for w in (name, *words)}


def write_browser(store_path: str | os.PathLike, out: str | os.PathLike, split: str | None = None,
                  limit: int | None = None, sources: Sequence[str] | None = None, page_size: int = 24) -> Path:
    """Write `out/index.html` and `out/images/` for the first `limit` images of `split` (all when None), showing
    the captions of `sources` (all when None); returns the page's path. The folder is written atomically and never
    into the store (``common.atomic_file.atomic_folder``)."""
    if limit is not None and limit < 1:
        raise VLForgeError(f"--limit must be >= 1, got {limit}")
    if page_size < 1:
        raise VLForgeError(f"page size must be >= 1, got {page_size}")
    with atomic_folder(out, [store_path]) as tmp, CaptionStore(store_path, readonly=True) as store:
        (tmp / "images").mkdir()
        ids = store.ids(split=split) if split is not None else store.ids()
        if split is not None and not ids:
            raise VLForgeError(f"store {os.fspath(store_path)!r} has no images in split {split!r}")
        ids = ids[:limit] if limit is not None else ids
        sections, shown_sources = [], {}
        for n, image_id in enumerate(track(ids, "browse", unit="images")):
            record = store.get(image_id)
            captions = [c for c in record.captions if sources is None or c.source in sources]
            for caption in captions:
                shown_sources[caption.source] = shown_sources.get(caption.source, 0) + 1
            image_file = _write_thumbnail(store, record, tmp / "images", n)
            sections.append(_record_html(record, captions, image_file, n // page_size))
        title = f"{Path(store_path).name}" + (f" — {split}" if split else "")
        (tmp / "index.html").write_text(_page(title, sections, shown_sources, page_size), encoding="utf-8")
    return Path(out) / "index.html"


def _write_thumbnail(store: CaptionStore, record: ImageRecord, folder: Path, n: int) -> str | None:
    try:
        image = store.load_image(record).convert("RGB")
    except VLForgeError:
        return None  # shown as "image not available"; the captions still show
    image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
    name = f"{n:06d}.png"
    image.save(folder / name, format="PNG")
    return f"images/{name}"


def caption_flags(record: ImageRecord, caption: Caption) -> set[str]:
    """The words of `caption` to mark as hallucinated (lower-case)."""
    stored = caption.scores.get("hallucinated")
    if isinstance(stored, list):
        return {str(w).lower() for w in stored}
    graph = record.meta.get("scene_graph") if isinstance(record.meta, dict) else None
    if not isinstance(graph, dict) or "objects" not in graph:
        return set()
    try:
        wrong = set(chair([caption.text], [scene_objects(graph)]).hallucinations[0])
    except (VLForgeError, KeyError, TypeError):
        return set()
    return {w.lower() for w in _WORD.findall(caption.text) if _CANONICAL.get(w.lower()) in wrong}


def _marked(text: str, flagged: set[str]) -> str:
    """`text` HTML-escaped, with the flagged words wrapped in <mark>."""
    parts, last = [], 0
    for match in _WORD.finditer(text):
        if match.group().lower() in flagged:
            word = html.escape(match.group())
            parts += [html.escape(text[last:match.start()]), f'<mark class="halluc">{word}</mark>']
            last = match.end()
    return "".join(parts) + html.escape(text[last:])


def _critic(verdicts: Any) -> str:
    rows = []
    for item in verdicts if isinstance(verdicts, list) else []:
        sentence, verdict = (item.get("sentence"), item.get("verdict")) if isinstance(item, dict) else (
            (item[0], item[1]) if isinstance(item, list | tuple) and len(item) == 2 else (None, None))
        if sentence is None:
            continue
        good = verdict is True or str(verdict).lower() in ("correct", "true", "yes", "1")
        rows.append(f'<li class="{"ok" if good else "bad"}">{"✓" if good else "✗"} {html.escape(str(sentence))}</li>')
    return f'<ul class="critic">{"".join(rows)}</ul>' if rows else ""


def _scores(record: ImageRecord, caption: Caption, flagged: set[str]) -> str:
    badges = []
    clip = caption.scores.get("clip_score")
    if isinstance(clip, int | float):
        badges.append(f'<span class="score clip">CLIP {clip:.3f}</span>')
    if flagged:
        badges.append(f'<span class="score chair">CHAIR: {html.escape(", ".join(sorted(flagged)))}</span>')
    for name, value in sorted(caption.scores.items()):
        if name not in ("clip_score", "hallucinated", "critic") and isinstance(value, int | float | str | bool):
            shown = f"{value:.3g}" if isinstance(value, float) else str(value)
            badges.append(f'<span class="score">{html.escape(name)} {html.escape(shown)}</span>')
    return "".join(badges)


def _record_html(record: ImageRecord, captions: list[Caption], image_file: str | None, page: int) -> str:
    groups: dict[tuple[str, str], list[Caption]] = {}
    for caption in captions:
        groups.setdefault((caption.source, caption.kind), []).append(caption)
    blocks = []
    for (source, kind), members in groups.items():
        items = []
        for caption in members:
            flagged = caption_flags(record, caption)
            provenance = html.escape(json.dumps(caption.provenance, ensure_ascii=False, sort_keys=True, default=str))
            items.append(f'<li class="caption" title="{provenance}">{_marked(caption.text, flagged)}'
                         f'{_scores(record, caption, flagged)}{_critic(caption.scores.get("critic"))}</li>')
        blocks.append(f'<div class="group" data-source="{html.escape(source)}"><h4>{html.escape(source)} / '
                      f'{html.escape(kind)} ({len(members)})</h4><ul>{"".join(items)}</ul></div>')
    image = (f'<img src="{image_file}" alt="{html.escape(record.image_id)}">' if image_file
             else '<div class="missing">image not available</div>')
    return (f'<section class="record" data-page="{page}"><div class="image">{image}<p class="id">'
            f'{html.escape(record.image_id)}<br>{html.escape(record.split)}, {record.width}×{record.height}</p></div>'
            f'<div class="captions">{"".join(blocks) or "<p>no captions</p>"}</div></section>')


_STYLE = """
body { font-family: sans-serif; margin: 1em; color: #222; }
header { position: sticky; top: 0; background: #fff; padding: .5em 0; border-bottom: 1px solid #ccc; }
.record { display: flex; gap: 1em; border-bottom: 1px solid #eee; padding: .6em 0; }
.image img { width: 160px; image-rendering: pixelated; border: 1px solid #ccc; }
.image .id { font-size: small; color: #666; max-width: 160px; word-break: break-all; }
.group h4 { margin: .3em 0 .1em; font-size: small; color: #225; }
.group ul { margin: 0; padding-left: 1.2em; }
.caption { margin: .1em 0; }
mark.halluc { background: #f8b4b4; }
.score { font-size: x-small; background: #eef; border-radius: 3px; padding: 0 .3em; margin-left: .4em; }
.score.chair { background: #fdd; }
.critic { font-size: small; list-style: none; padding-left: .5em; }
.critic .ok { color: #161; } .critic .bad { color: #a11; }
"""

_SCRIPT = """
(function () {
  const pages = Math.max(1, ...Array.from(document.querySelectorAll('.record'), s => Number(s.dataset.page) + 1));
  let page = 0;
  const hiddenSources = new Set();
  function render() {
    let images = 0, captions = 0;
    for (const section of document.querySelectorAll('.record')) {
      section.hidden = Number(section.dataset.page) !== page;
      if (section.hidden) continue;
      images += section.querySelectorAll('img').length;
      for (const group of section.querySelectorAll('.group')) {
        group.hidden = hiddenSources.has(group.dataset.source);
        if (!group.hidden) captions += group.querySelectorAll('.caption').length;
      }
    }
    document.getElementById('page').textContent = 'page ' + (page + 1) + ' / ' + pages;
    document.getElementById('status').textContent = images + ' images, ' + captions + ' captions shown';
  }
  document.getElementById('prev').onclick = () => { page = Math.max(0, page - 1); render(); };
  document.getElementById('next').onclick = () => { page = Math.min(pages - 1, page + 1); render(); };
  for (const box of document.querySelectorAll('.source-filter')) {
    box.onchange = () => { box.checked ? hiddenSources.delete(box.value) : hiddenSources.add(box.value); render(); };
  }
  render();
})();
"""


def _page(title: str, sections: list[str], sources: dict[str, int], page_size: int) -> str:
    filters = "".join(f'<label><input type="checkbox" class="source-filter" value="{html.escape(s)}" checked> '
                      f'{html.escape(s)} ({n})</label> ' for s, n in sorted(sources.items()))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<style>{_STYLE}</style></head>
<body><header><h1>{html.escape(title)}</h1>
<p>{len(sections)} images, {page_size} per page. Sources: {filters}</p>
<p><button id="prev">previous</button> <span id="page"></span> <button id="next">next</button>
<span id="status"></span></p></header>
<main>{"".join(sections)}</main>
<script>{_SCRIPT}</script></body></html>
"""
