"""`vlforge-critic teacher-data`: critic rows from real (image, human-corrected caption, original caption) pairs,
written by a teacher MLLM (#12 item 2, real data; paper §4.2, Figs. 13–14).

    vlforge-critic teacher-data --pairs data/corrections.jsonl --teacher Qwen/Qwen2-VL-7B-Instruct \\
        --output_dir data/critic_real [--image_folder DIR] [--limit N] [--batch_size 4]

Input: JSON lines ``{"id", "image", "corrected", "original"}``, the image path relative to ``--image_folder``
(default: the pairs file's folder). Per pair, the teacher writes the coarse-grained error rationale from the image
and both captions (Fig. 13); the original caption is split into atomic sentences (``RuleBasedDecomposer``); for each
sentence the teacher writes the critique with the rationale as its tips (Fig. 14), ending with the verdict line.
Prompts: ``configs/prompts/teacher.yaml``. The teacher is any image-text model ``common.lm`` loads (hub name, folder,
preset), greedy decoding.

Output (as ``make-data``): ``critic.json`` (LLaVA conversation rows; the human turn is the critic's training prompt,
Fig. 14's instruction without the tips, as the trained critic sees no rationale; images relative to the pairs'
image folder: train with ``--data.init_args.image_folder`` set to it), ``rationales.jsonl`` (``{"id",
"rationale"}``) and ``summary.json``. Bad input is skipped and counted with its id: a line that is not a JSON object
with the four keys as non-empty texts, an image path outside the folder, an unreadable image; a critique without a
verdict line is left out (``no_verdict``), never taken as consistent.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jsonargparse import ArgumentError, ArgumentParser
from PIL import Image, UnidentifiedImageError

from vlforge.common.errors import VLForgeError
from vlforge.common.progress import track
from vlforge.common.store.export_llava import IMAGE_TOKEN
from vlforge.critic.decompose import RuleBasedDecomposer
from vlforge.critic.llava_format import image_inside
from vlforge.critic.prompts import critic_prompt, shipped_prompts
from vlforge.critic.verdicts import parse_verdict

PROG = "vlforge-critic teacher-data"
PROMPTS_FILE = "teacher.yaml"
FIELDS = {"fig13": ("{corrected}", "{original}"), "fig14": ("{rationale}", "{sentence}")}
PAIR_KEYS = ("id", "image", "corrected", "original")
CONVERSATIONS_FILE, RATIONALES_FILE, SUMMARY_FILE = "critic.json", "rationales.jsonl", "summary.json"


@cache
def teacher_prompts() -> dict[str, str]:
    """The shipped teacher prompts (fig13, fig14), each holding its fields once."""
    return shipped_prompts(PROMPTS_FILE, FIELDS)


def rationale_prompt(corrected: str, original: str) -> str:
    return teacher_prompts()["fig13"].replace("{corrected}", corrected).replace("{original}", original)


def teacher_critique_prompt(rationale: str, sentence: str) -> str:
    return teacher_prompts()["fig14"].replace("{rationale}", rationale).replace("{sentence}", sentence)


@dataclass
class CorrectionPair:
    pair_id: str
    image: str
    path: Path
    corrected: str
    original: str


def read_pairs(path: str | Path, image_folder: str | Path | None, limit: int | None = None
               ) -> tuple[list[CorrectionPair], list[dict[str, str]]]:
    """The usable pairs of a JSON-lines file (at most ``limit``) and the skipped ones (``{"id", "reason"}``)."""
    path = Path(path)
    root = Path(image_folder) if image_folder is not None else path.parent
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise VLForgeError(f"{path}: cannot read the pairs file ({err.strerror})") from None
    pairs, skipped = [], []
    for number, line in enumerate(lines, start=1):
        if limit is not None and len(pairs) >= limit:
            break
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            skipped.append({"id": f"line {number}", "reason": "not JSON"})
            continue
        row_id = str(row.get("id", f"line {number}")) if isinstance(row, dict) else f"line {number}"
        if not isinstance(row, dict) or any(not isinstance(row.get(k), str) or not row[k].strip() for k in PAIR_KEYS):
            skipped.append({"id": row_id, "reason": f"needs {', '.join(PAIR_KEYS)} as non-empty texts"})
            continue
        try:
            image_path = image_inside(root, row["image"], row_id)
        except VLForgeError as err:
            skipped.append({"id": row_id, "reason": str(err)})
            continue
        pairs.append(CorrectionPair(row_id, row["image"], image_path, row["corrected"], row["original"]))
    return pairs, skipped


def critic_row(pair: CorrectionPair, number: int, sentence: str, critique: str) -> dict[str, Any] | None:
    """The LLaVA conversation row of one teacher critique (None without a verdict line)."""
    verdict = parse_verdict(critique)
    if verdict is None:
        return None
    return {"id": f"{pair.pair_id}-{number}", "image": pair.image, "error_type": None,
            "conversations": [{"from": "human", "value": f"{IMAGE_TOKEN}\n{critic_prompt(sentence)}"},
                              {"from": "gpt", "value": critique}]}


def _load(pair: CorrectionPair) -> Image.Image | None:
    try:
        with Image.open(pair.path) as image:
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError):
        return None


def make_teacher_data(pairs_path: str, teacher: str, output_dir: str, image_folder: str | None = None,
                      weights: str | None = None, limit: int | None = None, batch_size: int = 4,
                      rationale_tokens: int = 256, critique_tokens: int = 512, dtype: str = "float32",
                      trust_remote_code: bool = False, prompt_style: str = "chat") -> dict[str, Any]:
    """Write the rows of the module docstring; returns the summary."""
    from vlforge.common.lm.generate import generate_texts
    from vlforge.common.lm.model import GenerativeModel

    pairs, skipped = read_pairs(pairs_path, image_folder, limit)
    if not pairs:
        raise VLForgeError(f"{pairs_path}: no usable pair ({len(skipped)} skipped)")
    model = GenerativeModel(teacher, dtype=dtype, trust_remote_code=trust_remote_code, weights=weights)
    if getattr(model.model.config, "vision_config", None) is None:
        raise VLForgeError(f"teacher {teacher}: a text-only model; the teacher has to see the image")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, rationales, counts = [], [], Counter()
    ask = {"batch_size": batch_size, "prompt_style": prompt_style}
    for start in track(range(0, len(pairs), batch_size), PROG, total=-(-len(pairs) // batch_size), unit="batches"):
        loaded = [(pair, _load(pair)) for pair in pairs[start:start + batch_size]]
        skipped += [{"id": p.pair_id, "reason": f"cannot read image {p.image}"} for p, image in loaded if image is None]
        loaded = [(p, image) for p, image in loaded if image is not None]
        if not loaded:
            continue
        said = generate_texts(model, None, [rationale_prompt(p.corrected, p.original) for p, _ in loaded],
                              [image for _, image in loaded], {"max_new_tokens": rationale_tokens}, **ask)
        asks = [(p, image, rationale, sentence) for (p, image), rationale in zip(loaded, said, strict=True)
                for sentence in RuleBasedDecomposer()(p.original)]
        critiques = generate_texts(model, None, [teacher_critique_prompt(r, s) for _, _, r, s in asks],
                                   [image for _, image, _, _ in asks], {"max_new_tokens": critique_tokens},
                                   **ask) if asks else []
        numbers: Counter[str] = Counter()
        for (pair, _, _, sentence), critique in zip(asks, critiques, strict=True):
            row = critic_row(pair, numbers[pair.pair_id], sentence, critique)
            numbers[pair.pair_id] += 1
            counts["sentences"] += 1
            counts["no_verdict" if row is None else
                   ("consistent" if parse_verdict(critique) else "inconsistent")] += 1
            if row is not None:
                rows.append(row)
        rationales += [{"id": p.pair_id, "rationale": r} for (p, _), r in zip(loaded, said, strict=True)]
        counts["pairs"] += len(loaded)
    for name, content in ((CONVERSATIONS_FILE, json.dumps(rows, ensure_ascii=False)),
                          (RATIONALES_FILE, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rationales))):
        partial = out / f"{name}.partial"
        partial.write_text(content, encoding="utf-8")
        partial.replace(out / name)
    summary = {"pairs_file": str(pairs_path), "image_folder": str(image_folder or Path(pairs_path).parent),
               "teacher": teacher, "weights": weights, "rows": len(rows),
               "counts": {k: counts[k] for k in ("pairs", "sentences", "consistent", "inconsistent", "no_verdict")},
               "skipped": skipped}
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog=PROG, exit_on_error=False, allow_abbrev=False,
                            description="Critic rows from (image, corrected, original caption) pairs by a teacher.")
    parser.add_argument("--pairs", type=str, required=True, help="JSON lines {id, image, corrected, original}")
    parser.add_argument("--teacher", type=str, required=True, help="an image-text model: hub name, folder, preset")
    parser.add_argument("--output_dir", type=str, required=True)
    parser.add_argument("--image_folder", type=str | None, default=None, help="default: the pairs file's folder")
    parser.add_argument("--weights", type=str | None, default=None, help="a vlforge checkpoint of the teacher")
    parser.add_argument("--limit", type=int | None, default=None, help="the first N usable pairs")
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--rationale_tokens", type=int, default=256)
    parser.add_argument("--critique_tokens", type=int, default=512)
    parser.add_argument("--dtype", type=str, default="float32")
    parser.add_argument("--trust_remote_code", type=bool, default=False)
    try:
        try:
            args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
        except ArgumentError as err:
            raise VLForgeError(str(err).splitlines()[0]) from None
        summary = make_teacher_data(args.pairs, args.teacher, args.output_dir, args.image_folder, args.weights,
                                    args.limit, args.batch_size, args.rationale_tokens, args.critique_tokens,
                                    args.dtype, args.trust_remote_code)
    except VLForgeError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    c = summary["counts"]
    print(f"{PROG}: {c['pairs']} pairs, {c['sentences']} sentences: {summary['rows']} rows ({c['consistent']} "
          f"consistent, {c['inconsistent']} inconsistent), {c['no_verdict']} without a verdict, skipped "
          f"{len(summary['skipped'])}")
    return 0
