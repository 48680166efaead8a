"""Query-pair construction (#14 item 2) with a real tiny CLIP from `vlforge-vlm fit`, a real LMDB store and the
installed MiniLM: the embedding cache and its invalidation, ranking, the oracle agent, blurring, the MiniLM filter,
D_SFT / D_PRO rows, the PRO export, skip-and-count, and the make-data entry point."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from vlforge.common.cli import run_cli
from vlforge.common.progress import is_status_line
from vlforge.common.records import Caption
from vlforge.common.shapes.build import build_shapes_store
from vlforge.common.shapes.grammar import region_phrase
from vlforge.common.shapes.queries import VAGUE_COLOURS, VAGUE_REGIONS, VAGUE_SHAPES, coarse_region
from vlforge.common.shapes.vocabulary import RARE_COLOUR_WORDS, RARE_SHAPE_WORDS
from vlforge.common.store import CaptionStore
from vlforge.rewriter.agents import QueryCase, SceneGraphOracleAgent
from vlforge.rewriter.blur import blur_query
from vlforge.rewriter.embedding_cache import cache_dir, cached_image_index
from vlforge.rewriter.make_data import main
from vlforge.rewriter.pair_files import PRO_FILE, SFT_FILE, export_pro_jsonl, read_query_pairs
from vlforge.rewriter.query_pairs import QueryPairConfig, make_query_pairs
from vlforge.rewriter.query_words import named_objects
from vlforge.rewriter.retriever import Retriever
from vlforge.rewriter.similarity import SentenceSimilarity
from vlforge.vlm.evaluation import encode_split
from vlforge.vlm.loading import load_clip


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("shapes") / "store"
    build_shapes_store(path, num_images=160, seed=0, image_size=32, workers=1)
    return str(path)


@pytest.fixture(scope="module")
def checkpoint(store, tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("runs")
    code = run_cli("vlm", ["fit", "--config", "vlm:model/clip_tiny.yaml",
                           "--config", "vlm:data/shapes_alt_text_gt_short.yaml",
                           "--data.init_args.store", store, "--data.init_args.num_workers", "0",
                           "--data.init_args.batch_size", "16", "--trainer.max_steps", "2",
                           "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0",
                           "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
                           "--run_root", str(root)])
    assert code == 0
    return str(root / "vlm" / "version_0" / "checkpoints" / "last.ckpt")


@pytest.fixture(scope="module")
def model(checkpoint):
    return load_clip(checkpoint)


@pytest.fixture(scope="module")
def similarity():
    return SentenceSimilarity()


def test_cache_is_reused_and_invalidated_by_store_or_checkpoint_changes(model, store, checkpoint, tmp_path):
    own_store = tmp_path / "store"
    shutil.copytree(store, own_store)
    own_checkpoint = tmp_path / "last.ckpt"
    shutil.copy(checkpoint, own_checkpoint)
    first, cached = cached_image_index(model, own_store, "pool", own_checkpoint, 32)
    assert not cached and len(first.image_ids) == len(CaptionStore(own_store).ids(split="pool"))
    again, cached = cached_image_index(model, own_store, "pool", own_checkpoint, 32)
    assert cached and again.image_ids == first.image_ids and torch.equal(again.features, first.features)
    encoding = encode_split(model, own_store, "pool", 32)  # the cached rows are the model's own features
    torch.testing.assert_close(first.features, encoding.image_features.float())

    writer = CaptionStore(own_store, readonly=False)
    writer.append_captions({first.image_ids[0]: [Caption("a new caption", source="test", kind="free")]})
    writer.close()
    _, cached = cached_image_index(model, own_store, "pool", own_checkpoint, 32)
    assert not cached  # the store changed
    _, cached = cached_image_index(model, own_store, "pool", own_checkpoint, 32)
    assert cached
    own_checkpoint.write_bytes(own_checkpoint.read_bytes() + b"\0")
    _, cached = cached_image_index(model, own_store, "pool", own_checkpoint, 32)
    assert not cached  # the checkpoint changed
    assert len(list(cache_dir(own_store).glob("pool-*.safetensors"))) == 1  # the stale file is gone


def test_ranks_match_a_brute_force_count(model, store, checkpoint):
    index, _ = cached_image_index(model, store, "pool", checkpoint, 32)
    retriever = Retriever(model)
    texts = ["a red circle", "a blue star on a grey background", "crimson disc"]
    right = index.image_ids[:3]
    ranks, scores = retriever.ranks(texts, index, right)
    features = retriever.encode_texts(texts)
    for k in range(3):
        sims = features[k] @ index.features.T
        row = index.row(right[k])
        assert scores[k].item() == pytest.approx(sims[row].item(), abs=1e-6)
        assert ranks[k].item() == 1 + sum(sims[i] >= sims[row] for i in range(len(sims)) if i != row)
    top = retriever.top_images(texts[0], index, 5)
    assert top[0] == index.image_ids[int((features[0] @ index.features.T).argmax())]


def _record_with_objects(store, n):
    return next(r for r in CaptionStore(store).iter_records(split="pool") if len(r.meta["scene_graph"]["objects"]) == n)


def test_oracle_translates_the_target_and_adds_what_wrong_images_lack(store):
    record = _record_with_objects(store, 2)
    scene = record.meta["scene_graph"]
    target, other = scene["objects"]
    agent = SceneGraphOracleAgent()
    case = QueryCase("q", "rare words", record, target=0)
    assert agent.propose(case, [], 1)[0] == f"a {target['colour']} {target['shape']}"
    # A wrong image with the same object, same size and region, but not the other object: the other object is
    # the most distinguishing detail, so the second turn adds it.
    wrong = CaptionStore(store).get(record.image_id)
    wrong.meta = {"scene_graph": {**scene, "objects": [dict(target)],
                                  "background": {"colour": "none", "texture": "plain"}}}
    wrong_other_bg = {**scene, "objects": [dict(target)]}
    wrong2 = CaptionStore(store).get(record.image_id)
    wrong2.meta = {"scene_graph": wrong_other_bg}
    proposals = agent.propose(case, [wrong, wrong2], 2)
    article = "an" if other["colour"][0] in "aeiou" else "a"
    assert proposals[0] == f"a {target['colour']} {target['shape']} and {article} {other['colour']} {other['shape']}"
    full = agent.propose(case, [wrong, wrong2], 1)[-1]
    assert full.startswith(f"a {target['size']} {target['colour']} {target['shape']} {region_phrase(target['region'])}")
    assert full.endswith(f"on a {scene['background']['colour']} background") and other["shape"] in full
    assert agent.propose(QueryCase("q", "x", record, target=None), [], 1) == []


def test_stated_only_oracle_adds_nothing_the_query_does_not_say(store):
    record = _record_with_objects(store, 2)
    scene = record.meta["scene_graph"]
    target, other = scene["objects"]
    agent = SceneGraphOracleAgent(stated_only=True)
    rare = f"{RARE_COLOUR_WORDS[target['colour']][0]} {RARE_SHAPE_WORDS[target['shape']][0]}"
    other_rare = f"{RARE_COLOUR_WORDS[other['colour']][1]} {RARE_SHAPE_WORDS[other['shape']][1]}"
    canonical = f"a {target['colour']} {target['shape']}"
    other_words = f"{other['colour']} {other['shape']}"
    with_other = f"{canonical} and {'an' if other_words[0] in 'aeiou' else 'a'} {other_words}"
    # A bare rare-word query: the translation only, whatever the turn and the wrong images.
    assert set(agent.propose(QueryCase("q", rare, record, target=0), [], 3)) == {canonical}
    # A named neighbour and a backdrop are kept, translated; size and the target's region never appear.
    background = scene["background"]["colour"]
    text = f"{rare} next to an {other_rare} on a {background} backdrop"
    proposals = agent.propose(QueryCase("q", text, record, target=0), [], 1)
    assert proposals == [canonical, with_other, f"{with_other} on a {background} background"]
    # A vague query's region is kept as coarse as the query says it.
    region = coarse_region(target["region"])
    vague = f"something {VAGUE_COLOURS[target['colour']]} and {VAGUE_SHAPES[target['shape']]} {VAGUE_REGIONS[region]}"
    assert agent.propose(QueryCase("q", vague, record, target=0), [], 1)[-1] == f"{canonical} {region_phrase(region)}"


def test_named_objects_reads_colour_shape_pairs():
    assert named_objects("crimson disc next to an azure lozenge") == [("red", "circle"), ("blue", "diamond")]
    assert named_objects("something reddish and round near the top") == []
    assert named_objects("a large Blue Hexagon") == [("blue", "hexagon")]
    assert named_objects("a hexagon that is blue") == []  # a colour word after its shape names no object


def test_blur_query():
    assert blur_query("crimson disc next to an azure lozenge") == "something reddish and round"
    assert blur_query("A large Blue Hexagon") == "something bluish and many-sided"
    assert blur_query("a cat on a mat") is None


def test_similarity_matches_sentence_transformers(similarity):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    from vlforge.common.presets.tokenizer import minilm_model_dir

    texts = ["crimson disc next to an azure lozenge", "a red circle", "something bluish and round near the top"]
    reference = sentence_transformers.SentenceTransformer(str(minilm_model_dir()), device="cpu")
    torch.testing.assert_close(similarity.embed(texts), torch.tensor(reference.encode(texts)), atol=1e-5, rtol=0)
    sims = similarity.pairwise(["crimson disc", "crimson disc"], ["red circle", "a sign that reads Taxi"])
    assert sims[0] > sims[1]


def test_pairs_satisfy_their_definitions_and_bad_inputs_are_counted(model, store, checkpoint, similarity):
    index, _ = cached_image_index(model, store, "pool", checkpoint, 32, max_images=30)  # part of the split only
    config = QueryPairConfig(high_quality_rank=10, num_candidates=3, min_similarity=0.2)
    pairs = make_query_pairs(Retriever(model), index, CaptionStore(store), "pool", SceneGraphOracleAgent(),
                             similarity.pairwise, config)
    counts = pairs.counts
    images_outside = len(CaptionStore(store).ids(split="pool")) - 30
    assert counts["skipped_image_not_in_cache"] == 2 * images_outside  # two queries per ShapesWorld image
    assert all(q.split("#")[0] not in index.position for q, r in pairs.skipped if r == "image_not_in_cache")
    assert counts["queries"] == 60 == counts["low_quality"] + counts["high_quality"]
    assert counts["blurred"] > 0 and counts["low_quality"] > 0
    assert {r.origin for r in pairs.pro} == {"low", "blurred"}
    for row in pairs.pro:
        scores = [c.score for c in row.candidates]
        assert len(scores) >= 2 and scores == sorted(scores, reverse=True) and len(scores) <= 3
        assert all(c.similarity >= 0.2 for c in row.candidates)
        assert row.origin in ("low", "blurred")
    for row in pairs.sft:
        assert row.candidates[0].rank <= 10
    for row in (r for r in pairs.pro + pairs.sft if r.origin == "low"):
        assert row.query_rank > 10
    retriever = Retriever(model)
    for row in (r for r in pairs.pro + pairs.sft if r.origin == "blurred"):
        original_score = retriever.scores([row.original], index, [row.image_id])[0].item()
        assert row.query == blur_query(row.original) and row.query_score < original_score
    # A rewrite's similarity and score are what the models say.
    row = pairs.pro[0]
    texts = [c.text for c in row.candidates]
    expected = Retriever(model).scores(texts, index, [row.image_id] * len(texts))
    torch.testing.assert_close(torch.tensor([c.score for c in row.candidates]), expected, atol=1e-5, rtol=0)
    sims = similarity.pairwise([row.query] * len(texts), texts)
    torch.testing.assert_close(torch.tensor([c.similarity for c in row.candidates]), sims, atol=1e-5, rtol=0)


class _BadAgent:
    name = "bad"

    def propose(self, case, wrong, turn):
        return ["", "   ", "word " * 50, "a red circle"]


def test_empty_and_overlong_rewrites_are_skipped_with_the_query_id(model, store, checkpoint, similarity):
    index, _ = cached_image_index(model, store, "pool", checkpoint, 32)
    config = QueryPairConfig(high_quality_rank=0, max_turns=1, blur=False, max_queries=2, min_similarity=-1.0)
    pairs = make_query_pairs(Retriever(model), index, CaptionStore(store), "pool", _BadAgent(), similarity.pairwise,
                             config)
    assert pairs.counts["skipped_empty_rewrite"] == 4 and pairs.counts["skipped_rewrite_too_long"] == 2
    first_two = [f"{r.image_id}#{k}" for r in CaptionStore(store).iter_records(split="pool")
                 for k, c in enumerate(r.captions) if c.kind == "query"][:2]
    assert sorted({q for q, _ in pairs.skipped}) == sorted(first_two)


def test_make_data_writes_rows_and_the_pro_export(store, checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VLFORGE_PROGRESS_INTERVAL", "0")  # a status line per query, as in a log file
    monkeypatch.delenv("VLFORGE_PROGRESS", raising=False)
    out = tmp_path / "pairs"
    code = main(["--store", store, "--split", "pool", "--checkpoint", checkpoint, "--output_dir", str(out),
                 "--pairs.max_queries", "12", "--pairs.high_quality_rank", "20", "--pairs.min_similarity", "0.2",
                 "--export_pro", str(out / "pro.jsonl"), "--reward_scale", "100"])
    assert code == 0
    captured = capsys.readouterr()
    assert "D_SFT" in captured.out
    status = [line for line in captured.err.splitlines() if is_status_line(line)]
    queries = [line for line in status if line.startswith("vlforge-rewriter make-data: ")]
    assert [line.split()[2] for line in queries] == [f"{n}/12" for n in range(1, 13)] + ["12/12"]
    assert queries[-1].split(", ")[0] == "vlforge-rewriter make-data: 12/12 queries (100.0 %)" and "ETA" in queries[0]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["queries"] == 12 and summary["settings"]["pairs"]["high_quality_rank"] == 20
    pro_rows = read_query_pairs(out / PRO_FILE)
    assert len(pro_rows) == summary["d_pro"] and len(read_query_pairs(out / SFT_FILE)) == summary["d_sft"]
    exported = [json.loads(line) for line in (out / "pro.jsonl").read_text().splitlines()]
    assert len(exported) == len(pro_rows)
    for line, row in zip(exported, pro_rows):
        assert set(line) == {"prefix", "suffix", "reward", "sft_index"} and line["sft_index"] == 0
        assert line["prefix"] == [row.query] * len(row.candidates)
        assert line["suffix"] == [c.text for c in row.candidates]
        assert line["reward"] == pytest.approx([100 * c.score for c in row.candidates])
        assert line["reward"] == sorted(line["reward"], reverse=True)


def test_pro_export_and_reader_refuse_bad_rows(tmp_path):
    from vlforge.common.errors import VLForgeError
    from vlforge.rewriter.query_pairs import Candidate, QueryPairRow

    row = QueryPairRow("q#1", "img", "query", 0.1, 5, "low", [Candidate("a", 0.2, 1, 0.9, 1)])
    with pytest.raises(VLForgeError, match="q#1: PRO needs at least 2 candidates"):
        export_pro_jsonl([row], tmp_path / "x.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query_id": "q"}\n')
    with pytest.raises(VLForgeError, match=r"bad.jsonl:1: not a query-pair row"):
        read_query_pairs(bad)


def test_make_data_mistakes_are_one_line(store, checkpoint, tmp_path, capsys):
    assert main(["--store", store, "--split", "pool", "--checkpoint", checkpoint, "--output_dir",
                 str(tmp_path), "--agent", "gpt"]) == 2
    assert capsys.readouterr().err.strip() == ("vlforge-rewriter make-data: error: --agent: 'gpt' is not one of "
                                               "scene_graph_oracle, captioner_descriptions, lm")
    assert main(["--store", store, "--split", "pool", "--checkpoint", checkpoint, "--output_dir",
                 str(tmp_path), "--agent", "captioner_descriptions"]) == 2
    assert "needs --descriptions_source" in capsys.readouterr().err
    assert main(["--store", str(tmp_path / "nowhere"), "--split", "pool", "--checkpoint", checkpoint,
                 "--output_dir", str(tmp_path)]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert Path(checkpoint).is_file()


def test_nan_scores_are_skipped_with_the_query_id(model, store, checkpoint, similarity):
    import copy

    broken = copy.deepcopy(model)
    with torch.no_grad():
        for parameter in broken.text_tower.parameters():
            parameter.fill_(float("nan"))
    index, _ = cached_image_index(model, store, "pool", checkpoint, 32)
    pairs = make_query_pairs(Retriever(broken), index, CaptionStore(store), "pool", SceneGraphOracleAgent(),
                             similarity.pairwise, QueryPairConfig(max_queries=3))
    assert pairs.counts["skipped_nan_score"] == 3 and not pairs.sft and not pairs.pro
    assert [r for _, r in pairs.skipped] == ["nan_score"] * 3


def test_make_data_with_the_captioner_description_agent(store, checkpoint, tmp_path):
    """The description agent end to end; the store's gt dense captions stand in for a trained captioner's."""
    out = tmp_path / "pairs"
    assert main(["--store", store, "--split", "pool", "--checkpoint", checkpoint, "--output_dir", str(out),
                 "--agent", "captioner_descriptions", "--descriptions_source", "gt", "--descriptions_kind", "dense",
                 "--pairs.max_queries", "12", "--pairs.blur", "false"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["agent"] == "captioner_descriptions"
    assert summary["settings"]["descriptions"] == {"source": "gt", "kind": "dense"}
    rows = read_query_pairs(out / PRO_FILE)
    assert rows and summary["counts"]["agent_proposals"] > 0
    with CaptionStore(store) as s:
        dense = {r.image_id: r.captions_by(source="gt", kind="dense")[0].text for r in s.iter_records(split="pool")}
    for row in rows:  # every candidate is made of sentences of the right image's description
        sentences = {x.strip() for x in dense[row.image_id].replace(". ", ".|").split("|")}
        for candidate in row.candidates:
            assert all(x.strip() in sentences for x in candidate.text.replace(". ", ".|").split("|"))


class _RecordingAgent:
    name = "recording"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def propose(self, case, wrong, turn):
        self.seen.append(case.text)
        return ["a red circle"]


def test_the_agent_is_shown_the_blurred_query_not_the_original(model, store, checkpoint, similarity):
    index, _ = cached_image_index(model, store, "pool", checkpoint, 32)
    agent = _RecordingAgent()
    config = QueryPairConfig(high_quality_rank=200, max_turns=1, max_queries=6, min_similarity=-1.0)
    pairs = make_query_pairs(Retriever(model), index, CaptionStore(store), "pool", agent, similarity.pairwise, config)
    assert pairs.counts["high_quality"] == 6 and pairs.counts["blurred"] > 0
    blurred = {r.query_id: r for r in pairs.pro + pairs.sft if r.origin == "blurred"}.values()
    assert sorted(agent.seen) == sorted(r.query for r in blurred)
    assert not set(agent.seen) & {r.original for r in blurred}
