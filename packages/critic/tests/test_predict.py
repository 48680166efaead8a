"""`vlforge-critic predict` (#12 item 6): critic-rewrite of a store source into `<source>+critic` with provenance and
per-sentence verdicts; resumable; bad input (empty caption, too many sentences, undecodable image) handled and
nothing stored changed."""

import logging
import os
import shutil
import subprocess
import sys

import pytest

from vlforge.common.console import console
from vlforge.common.lm.generated_store import failures
from vlforge.common.lm.model import GenerativeModel
from vlforge.common.lm.shards import default_shard_root
from vlforge.common.records import Caption, ImageRecord
from vlforge.common.store import CaptionStore
from vlforge.critic.cli import TOOLS
from vlforge.critic.decompose import RuleBasedDecomposer
from vlforge.critic.rewrite import drop_inconsistent
from vlforge.critic.scoring import verdict_probabilities

SOURCE = "weak"


def _predict(store, tmp_path, *extra):
    return console("critic", TOOLS, argv=[
        "predict", "--config", "critic:predict_tiny.yaml", "--data.init_args.store", str(store),
        "--data.init_args.split", "test", "--data.init_args.batch_size", "2", "--model.init_args.source", SOURCE,
        "--model.init_args.kind", "null", "--trainer.enable_progress_bar", "false", "--run_root", str(tmp_path),
        *extra])


@pytest.fixture
def store(tmp_path, store_maker):
    path = store_maker(tmp_path / "shapes", {"test": 6})
    with CaptionStore(path, readonly=False) as s:
        ids = s.ids("test")
        dense = {i: s.get(i).captions_by(source="gt", kind="dense")[0].text for i in ids}
        captions = {i: [Caption(dense[i], SOURCE, "dense")] for i in ids[:3]}
        captions[ids[3]] = [Caption("", SOURCE, "dense")]                     # empty caption
        captions[ids[4]] = [Caption(" ".join(["There is a red circle."] * 30), SOURCE, "dense")]  # too long
        s.append_captions(captions)                                          # ids[5]: no caption of SOURCE
    return path


def test_predict_writes_critic_source_with_provenance_resumes_and_changes_nothing_stored(store, tmp_path, caplog):
    with CaptionStore(store) as s:
        before = {r.image_id: r.to_dict() for r in s.iter_records()}
    caplog.set_level(logging.INFO, logger="vlforge")
    assert _predict(store, tmp_path / "run1", "--model.init_args.max_sentences", "12") == 0
    summary = next(r.getMessage() for r in caplog.records if "critic-rewrite weak+critic" in r.getMessage())
    assert "5 captions added" in summary and "captions_cut 1" in summary and "sentences_cut 18" in summary
    assert "empty_captions 1" in summary and "without_caption 1" in summary and "failures 0" in summary
    critic = GenerativeModel("preset:llava_tiny")  # the config's critic: the preset's seeded init, no checkpoint
    with CaptionStore(store) as s:
        ids = s.ids("test")
        for image_id in ids:
            record = s.get(image_id)
            kept = [c.to_dict() for c in record.captions if c.source != "weak+critic"]
            assert kept == before[image_id]["captions"]  # nothing stored before is changed
            new = record.captions_by(source="weak+critic")
            if image_id == ids[5]:
                assert new == []
                continue
            (caption,) = new
            original = record.captions_by(source=SOURCE)[0].text
            assert caption.provenance["original_caption"] == original
            assert caption.provenance["critic"] == "preset:llava_tiny"
            assert caption.provenance["critic_checkpoint"] is None
            assert caption.provenance["rewriter"] == "drop_inconsistent"
            rows = caption.scores["critic_sentences"]
            sentences = RuleBasedDecomposer()(original)[:12]
            assert [row["sentence"] for row in rows] == sentences
            verdicts = [{"consistent": True, "inconsistent": False}.get(row["verdict"]) for row in rows]
            expected = verdict_probabilities(critic.model, critic.processor, [s.load_image(record)] * len(sentences),
                                             sentences, "short") if sentences else []
            assert [row["p_consistent"] for row in rows] == pytest.approx(expected, abs=1e-5)
            assert verdicts == [p >= 0.5 for p in expected]
            assert caption.text == drop_inconsistent(sentences, verdicts)
            if image_id == ids[3]:
                assert caption.text == "" and rows == []
            if image_id == ids[4]:
                assert len(rows) == 12 and caption.provenance["sentences_cut"] == 18
        after_first = {r.image_id: r.to_dict() for r in s.iter_records()}
    caplog.clear()
    assert _predict(store, tmp_path / "run2") == 0  # resumed: nothing left to check, nothing added
    assert any("0 captions added" in r.getMessage() for r in caplog.records)
    with CaptionStore(store) as s:
        assert {r.image_id: r.to_dict() for r in s.iter_records()} == after_first


def test_an_undecodable_image_is_recorded_as_a_failure_and_retried(store, tmp_path):
    broken = ImageRecord("zz-broken", "test", 64, 64, captions=[Caption("There is a red circle.", SOURCE, "dense")],
                         image_bytes=b"not an image")
    with CaptionStore(store, readonly=False) as s:
        s.put_records([broken])
    assert _predict(store, tmp_path) == 0
    with CaptionStore(store) as s:
        assert list(failures(s, "weak+critic")) == [broken.image_id]
        assert s.get(broken.image_id).captions_by(source="weak+critic") == []
        assert len([r for r in s.iter_records(source="weak+critic")]) == 5


@pytest.mark.ddp
def test_two_process_ddp_predict_gives_the_single_process_captions(store, tmp_path):
    """Two gloo processes split the images; their shard stores merge into exactly the captions (texts and
    per-sentence verdicts) of a single-process run on a copy of the store."""
    single = tmp_path / "single"
    shutil.copytree(store, single)
    assert _predict(single, tmp_path / "run_single") == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "vlforge.critic.cli", "predict", "--config", "critic:predict_tiny.yaml",
         "--config", "common:trainer/ddp_cpu_2.yaml", "--data.init_args.store", str(store),
         "--data.init_args.split", "test", "--data.init_args.batch_size", "2", "--model.init_args.source", SOURCE,
         "--model.init_args.kind", "null", "--trainer.enable_progress_bar=false", "--run_root", str(tmp_path / "r")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "MEMBER: 2/2" in run.stdout + run.stderr

    def written(path):
        with CaptionStore(path) as s:
            return {r.image_id: [(c.text, [row["verdict"] for row in c.scores["critic_sentences"]])
                                 for c in r.captions_by(source="weak+critic")] for r in s.iter_records()}

    ddp = written(store)
    assert sum(len(v) for v in ddp.values()) == 5 and all(len(v) <= 1 for v in ddp.values())
    assert ddp == written(single)
    assert not default_shard_root(store).exists()
