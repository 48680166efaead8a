"""Query rewriting in CLIP training (#14 item 5, query-rewriter paper §3.5): a drawn caption with a stored rewrite
is replaced with probability p (seeded; the share is p within binomial noise), rewrites come from the store, the
fit logs the share; one-line errors for a rewriter with no rewrites and for bad settings."""

from __future__ import annotations

import csv
import shutil

import pytest
import torch

from vlforge.common.cli import run_cli
from vlforge.common.errors import VLForgeError
from vlforge.common.records import Caption
from vlforge.common.rewrites import QUERIES_KEY, queries_of
from vlforge.common.store import CaptionStore
from vlforge.vlm.data import ContrastiveDataModule
from vlforge.vlm.rewrite_swap import RewriteSwap, rewrite_swap

REWRITER = "rewriter"
DRAWS = 3000


@pytest.fixture(scope="module")
def rewritten_store(shapes_store, tmp_path_factory) -> tuple[str, dict[str, str]]:
    """The store with every pool query rewritten to "<its image's short caption> (<query id>)" (rewrite -> query
    text)."""
    path = tmp_path_factory.mktemp("rewritten") / "store"
    shutil.copytree(shapes_store, path)
    rewrites: dict[str, str] = {}
    with CaptionStore(path, readonly=False) as store:
        new = {}
        for record in store.iter_records(split="pool"):
            short = record.captions_by(source="gt", kind="short")[0].text
            captions = []
            for qid, query in queries_of(record, "gt"):
                text = f"{short} ({qid})"
                rewrites[text] = query.text
                captions.append(Caption(text, source=REWRITER, kind="query",
                                        provenance={QUERIES_KEY: [{"query_id": qid, "original": query.text}]}))
            new[record.image_id] = captions
        store.append_captions(new)
    return str(path), rewrites


def _draw(store: str, probability: float, train_captions: list[dict], seed: int = 0) -> list[dict]:
    data = ContrastiveDataModule(store, train_captions=train_captions, batch_size=8,
                                 rewrite={"rewriter": REWRITER, "probability": probability})
    dataset = data.train_dataloader().dataset
    torch.manual_seed(seed)
    return [dataset[i % len(dataset)] for i in range(DRAWS)]


@pytest.mark.parametrize("probability", [0.6, 0.25])
def test_a_query_is_replaced_by_its_stored_rewrite_with_probability_p(rewritten_store, probability):
    store, rewrites = rewritten_store
    items = _draw(store, probability, [{"source": "gt", "kind": "query"}])
    replaced = [it for it in items if it["rewritten"]]
    share = len(replaced) / len(items)
    assert abs(share - probability) < 4 * (probability * (1 - probability) / DRAWS) ** 0.5
    assert {it["text"] for it in replaced} <= set(rewrites)
    assert {it["text"] for it in items if not it["rewritten"]} <= set(rewrites.values())
    again = _draw(store, probability, [{"source": "gt", "kind": "query"}])
    assert [it["text"] for it in again] == [it["text"] for it in items]  # seeded


def test_captions_without_a_rewrite_are_never_replaced_and_p_0_or_1(rewritten_store):
    store, rewrites = rewritten_store
    mixed = _draw(store, 1.0, [{"source": "gt", "kind": "query"}, {"source": "gt", "kind": "short"}])
    assert all(it["rewritten"] == (it["text"] in rewrites) for it in mixed)
    share = sum(it["rewritten"] for it in mixed) / DRAWS
    assert 0.4 < share < 0.6  # half the draws are queries, every one replaced; short captions never
    assert not any(it["rewritten"] for it in _draw(store, 0.0, [{"source": "gt", "kind": "query"}]))


def test_bad_settings_are_one_line(rewritten_store, shapes_store):
    with pytest.raises(VLForgeError, match="no caption of split 'pool'.*'nobody'"):
        ContrastiveDataModule(rewritten_store[0], train_captions=[{"source": "gt", "kind": "query"}],
                              rewrite={"rewriter": "nobody"}).train_dataloader()
    with pytest.raises(VLForgeError, match="probability must be in"):
        RewriteSwap(REWRITER, 1.5)
    with pytest.raises(VLForgeError, match="unknown key 'p'"):
        rewrite_swap({"rewriter": REWRITER, "p": 0.6})


def test_fit_with_the_shipped_delta_logs_the_rewritten_share(rewritten_store, tmp_path):
    code = run_cli("vlm", ["fit", "--config", "vlm:model/clip_tiny.yaml",
                           "--config", "vlm:data/shapes_alt_text_gt_short.yaml",
                           "--config", "experiments/vlm/clip_query_rewriting.yaml",
                           "--data.init_args.store", rewritten_store[0], "--data.init_args.num_workers", "0",
                           "--data.init_args.batch_size", "16", "--trainer.max_steps", "4",
                           "--trainer.log_every_n_steps", "1", "--trainer.limit_val_batches", "0",
                           "--trainer.num_sanity_val_steps", "0", "--trainer.enable_progress_bar", "false",
                           "--run_root", str(tmp_path)])
    assert code == 0
    rows = list(csv.DictReader(open(next(tmp_path.rglob("metrics.csv")))))
    shares = [float(r["train/rewritten_share"]) for r in rows if r.get("train/rewritten_share")]
    assert len(shares) == 4 and 0.0 < sum(shares) / 4 < 0.6  # about half the draws are queries, 60 % of them
