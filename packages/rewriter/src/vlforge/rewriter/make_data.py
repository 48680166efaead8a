"""`vlforge-rewriter make-data`: D_SFT and D_PRO of a store split with retriever feedback (query_pairs.py).

    vlforge-rewriter make-data --store data/shapes --split pref --checkpoint runs/vlm/version_0/checkpoints/last.ckpt \\
        --output_dir data/rewriter_pairs [--export_pro data/rewriter_pairs/pro_train.jsonl --reward_scale 100]

The agent is ``scene_graph_oracle`` (ShapesWorld's upper bound), ``captioner_descriptions`` (sees a trained
captioner's descriptions stored as captions of ``--descriptions_source``; description_agent.py) or ``lm`` (any
model ``vlforge.common.lm`` loads, ``--lm.source``, with the paper's prompts, ``--lm.prompts``; an MLLM sees the
images, a text-only LM the ``--descriptions_source`` descriptions; lm_agent.py). The retriever is a
vlforge-vlm checkpoint (Lightning .ckpt, vlforge export folder or open_clip folder), frozen; the
split's image features are cached beside the store. Writes d_sft.jsonl, d_pro.jsonl and summary.json into
``--output_dir``, optionally the PRO-shaped export, and prints a one-line summary.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import torch
from jsonargparse import ActionConfigFile, ArgumentError, ArgumentParser

from vlforge.common.cli import resolve_config_args
from vlforge.common.errors import VLForgeError
from vlforge.common.progress import Progress
from vlforge.common.store import CaptionStore
from vlforge.rewriter.agents import RewriteAgent, SceneGraphOracleAgent
from vlforge.rewriter.description_agent import CaptionerDescriptionAgent
from vlforge.rewriter.embedding_cache import cached_image_index
from vlforge.rewriter.lm_agent import LMAgentSettings, LMRewriteAgent
from vlforge.rewriter.pair_files import export_pro_jsonl, write_query_pairs
from vlforge.rewriter.query_pairs import QueryPairConfig, QueryPairs, make_query_pairs
from vlforge.rewriter.retriever import Retriever
from vlforge.rewriter.similarity import SentenceSimilarity

AGENTS = ("scene_graph_oracle", "captioner_descriptions", "lm")
PROG = "vlforge-rewriter make-data"


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog=PROG, exit_on_error=False, allow_abbrev=False,
                            description="Build D_SFT / D_PRO query pairs with retriever feedback.")
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML file of these options")
    parser.add_argument("--store", type=str, required=True)
    parser.add_argument("--split", type=str, required=True, help="queries and gallery images of this split")
    parser.add_argument("--checkpoint", type=str, required=True, help="the retriever (vlforge-vlm checkpoint)")
    parser.add_argument("--run_config", type=str | None, default=None)
    parser.add_argument("--output_dir", type=str, required=True)
    parser.add_argument("--agent", type=str, default="scene_graph_oracle", help=f"one of {', '.join(AGENTS)}")
    parser.add_argument("--oracle_stated_only", type=bool, default=False,
                        help="scene_graph_oracle: rewrite only what the query states, in canonical words")
    parser.add_argument("--descriptions_source", type=str | None, default=None,
                        help="captioner_descriptions, lm with a text-only LM: the captioner's name (caption source)")
    parser.add_argument("--descriptions_kind", type=str | None, default=None,
                        help="captioner_descriptions: the descriptions' caption kind (default: any)")
    parser.add_argument("--lm", type=LMAgentSettings, default=LMAgentSettings(),
                        help="lm: the model, prompts and decoding of the LM agent")
    parser.add_argument("--pairs", type=QueryPairConfig, default=QueryPairConfig())
    parser.add_argument("--image_size", type=int | None, default=None, help="default: the image tower's")
    parser.add_argument("--max_images", type=int | None, default=None, help="gallery: the first N images")
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--export_pro", type=str | None, default=None, help="also write PRO-shaped JSONL here")
    parser.add_argument("--reward_scale", type=float, default=1.0, help="PRO export: reward = scale * score")
    parser.add_argument("--device", type=str, default="cuda" if torch.cuda.is_available() else "cpu")
    return parser


def _load_retriever_model(checkpoint: str, run_config: str | None) -> torch.nn.Module:
    from vlforge.vlm.loading import load_clip

    return load_clip(checkpoint, run_config)


def build_agent(args: Any, similarity: Any, store: CaptionStore) -> RewriteAgent:
    """The challenge-response agent named by ``--agent``."""
    if args.agent == "scene_graph_oracle":
        return SceneGraphOracleAgent(args.oracle_stated_only)
    if args.agent == "lm":
        return LMRewriteAgent.load(args.lm, args.device, store.load_image, args.pairs.max_rewrite_words,
                                   args.descriptions_source, args.descriptions_kind)
    if not args.descriptions_source:
        raise VLForgeError("--agent captioner_descriptions needs --descriptions_source (the captioner's name)")
    return CaptionerDescriptionAgent(args.descriptions_source, similarity, args.descriptions_kind)


def make_data(args: Any) -> QueryPairs:
    if args.agent not in AGENTS:
        raise VLForgeError(f"--agent: {args.agent!r} is not one of {', '.join(AGENTS)}")
    similarity = SentenceSimilarity().pairwise
    store = CaptionStore(args.store)
    agent = build_agent(args, similarity, store)
    model = _load_retriever_model(args.checkpoint, args.run_config).to(args.device)
    image_size = args.image_size or getattr(getattr(model, "image_tower", None), "image_size", None)
    if image_size is None:
        raise VLForgeError("cannot tell the retriever's image size; pass --image_size")
    index, cached = cached_image_index(model, args.store, args.split, args.checkpoint, int(image_size),
                                       args.batch_size, args.max_images)
    print(f"{PROG}: {len(index.image_ids)} image features {'from the cache' if cached else 'computed'}",
          file=sys.stderr)
    lm_blur = agent.blur if isinstance(agent, LMRewriteAgent) and args.lm.blur else None
    with Progress(PROG, unit="queries") as progress:
        pairs = make_query_pairs(Retriever(model, args.batch_size), index, store, args.split, agent, similarity,
                                 args.pairs, progress=progress.advance_to, blur=lm_blur)
    if isinstance(agent, LMRewriteAgent):
        for query_id in agent.unparsable:
            pairs.skip(query_id, "unparsable_agent_output")
    settings = {"store": args.store, "split": args.split, "checkpoint": args.checkpoint, "agent": args.agent,
                "pairs": asdict(args.pairs)}
    if args.agent == "scene_graph_oracle":
        settings["oracle_stated_only"] = args.oracle_stated_only
    if args.agent in ("captioner_descriptions", "lm"):
        settings["descriptions"] = {"source": args.descriptions_source, "kind": args.descriptions_kind}
    if args.agent == "lm":
        settings["lm"] = asdict(args.lm)
    write_query_pairs(pairs, args.output_dir, settings)
    if args.export_pro:
        export_pro_jsonl(pairs.pro, args.export_pro, args.reward_scale)
    return pairs


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry; returns the exit code (2 with one line on a mistake)."""
    try:
        try:
            parser = build_parser()
            args = parser.instantiate_classes(parser.parse_args(
                resolve_config_args(sys.argv[1:] if argv is None else argv)))
        except ArgumentError as err:
            raise VLForgeError(str(err).splitlines()[0]) from None
        pairs = make_data(args)
    except VLForgeError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    counts = pairs.summary()["counts"]
    print(f"{PROG}: {counts.get('queries', 0)} queries ({counts.get('low_quality', 0)} low, "
          f"{counts.get('high_quality', 0)} high, {counts.get('blurred', 0)} blurred): "
          f"D_SFT {len(pairs.sft)}, D_PRO {len(pairs.pro)}, skipped {len(pairs.skipped)}")
    return 0
