"""Critic SFT (#12 item 3): rows from make-data's LLaVA JSON and straight from the store are the same examples;
`vlforge-critic fit` with the shipped tiny config trains SFTLitModule on them."""

import csv
import json
import random

import pytest

from vlforge.common.checkpoint import read_checkpoint_state_dict
from vlforge.common.console import console
from vlforge.common.errors import VLForgeError
from vlforge.common.lm.collate import SFTCollator
from vlforge.common.lm.model import GenerativeModel
from vlforge.common.presets import build_preset
from vlforge.common.progress import is_status_line
from vlforge.common.store import CaptionStore
from vlforge.critic.cli import TOOLS
from vlforge.critic.data import CriticSFTDataset
from vlforge.critic.datamodule import CriticDataModule
from vlforge.critic.make_data import main as make_data
from vlforge.critic.prompts import SENTENCE_MARKER, VERDICT_ONLY
from vlforge.critic.scoring import verdict_probabilities
from vlforge.critic.shapes_critic_data import critic_examples


@pytest.fixture(scope="module")
def store(tmp_path_factory, store_maker):
    return store_maker(tmp_path_factory.mktemp("critic") / "shapes", {"critic": 6, "val": 2, "test": 2})


def test_rows_from_llava_json_and_from_the_store_are_the_same_examples(store, tmp_path):
    assert make_data(["--store", str(store), "--split", "critic", "--output_dir", str(tmp_path / "out")]) == 0
    from_files = CriticSFTDataset(files=[str(tmp_path / "out" / "critic.json")], instruction="short")
    from_store = CriticSFTDataset(store=str(store), split="critic", instruction="short")
    assert len(from_files) == len(from_store) > 0
    for a, b in zip(from_files.items, from_store.items):
        assert (a.key, a.instruction, a.response) == (b.key, b.instruction, b.response)
    first = from_store[0], from_files[0]
    assert first[0]["image"].tobytes() == first[1]["image"].tobytes()  # the same pixels, exported and read back
    kinds = {item.key.rsplit("/", 1)[1] for item in from_store.items}
    assert kinds == {"critique", "verdict"}
    verdicts = [i for i in from_store.items if i.key.endswith("/verdict")]
    assert all(VERDICT_ONLY in i.instruction and i.response in ("Verdict: consistent", "Verdict: inconsistent")
               for i in verdicts)
    assert len(verdicts) == len(from_store) // 2  # every ShapesWorld critique has a verdict line


def test_critique_examples_end_with_the_rows_verdict_and_collate(store):
    data = CriticSFTDataset(store=str(store), split="critic", instruction="fig14", verdict_only=False)
    with CaptionStore(store) as source:
        record = source.get(data.items[0].key.split("/")[0].rsplit("-", 1)[0])
    expected = critic_examples(record, random.Random(f"critic/0/{record.image_id}"))
    assert data.items[0].response == expected[0].critique
    assert data.items[0].instruction.endswith(f"{SENTENCE_MARKER}{expected[0].sentence}")
    processor = build_preset("llava_tiny")[1]
    batch = SFTCollator(processor)([data[0], data[1]])
    assert batch["input_ids"].shape[0] == 2 and (batch["labels"] != -100).any(dim=1).all()


def test_describe_first_reaches_the_store_rows_critiques_only(store):
    module = CriticDataModule(store=str(store), instruction="short", describe_first=True, val_split=None)
    module.setup("fit")
    plain = CriticSFTDataset(store=str(store), split="critic", instruction="short")
    assert [i.key for i in module.train_set.items] == [i.key for i in plain.items]
    for described, before in zip(module.train_set.items, plain.items):
        if described.key.endswith("/verdict"):
            assert described.response == before.response
        else:
            first, *rest = described.response.splitlines()
            assert first.startswith("The image shows ") and rest[0] == "Key points to check:"
            assert rest[-1] == before.response.splitlines()[-1]


def test_observe_first_reaches_the_store_rows_critiques_only(store):
    module = CriticDataModule(store=str(store), instruction="short", observe_first=True, val_split=None)
    module.setup("fit")
    plain = CriticSFTDataset(store=str(store), split="critic", instruction="short")
    assert [i.key for i in module.train_set.items] == [i.key for i in plain.items]
    changed = 0
    for observed, before in zip(module.train_set.items, plain.items):
        if observed.key.endswith("/verdict"):
            assert observed.response == before.response
        else:
            changed += observed.response != before.response
            assert observed.response.splitlines()[-1] == before.response.splitlines()[-1]
    assert changed == sum(not i.key.endswith("/verdict") for i in plain.items)


def test_no_rows_and_no_examples_are_one_line_errors(tmp_path):
    with pytest.raises(VLForgeError, match="needs files"):
        CriticSFTDataset()
    (tmp_path / "bad.json").write_text(json.dumps([{"id": "r1", "image": "../x.png", "conversations": []}]))
    with pytest.raises(VLForgeError, match="row r1"):
        CriticSFTDataset(files=[str(tmp_path / "bad.json")])


def test_fit_console_trains_the_shipped_tiny_recipe(store, tmp_path, capsys, monkeypatch):
    """The shipped tiny recipe through the console on verdict examples: the response loss falls to a fraction of
    the random init's, each validation samples the critic's verdicts on fixed validation examples, and the
    checkpoint loads back as a critic that scores and that `vlforge-critic evaluate` evaluates with status lines in
    a log. (Verdict accuracy itself needs far longer training: the slow outcome in docs/results.md.)"""
    code = console("critic", TOOLS, argv=[
        "fit", "--config", "critic:shapes_tiny.yaml", "--data.init_args.store", str(store),
        "--data.init_args.critiques", "false", "--data.init_args.val_split", "val", "--data.init_args.val_limit", "1",
        "--data.init_args.batch_size", "8", "--trainer.max_steps", "30", "--model.init_args.lr", "0.005",
        "--trainer.enable_progress_bar", "false", "--run_root", str(tmp_path)])
    assert code == 0
    run = tmp_path / "critic" / "version_0"
    with open(run / "metrics.csv") as f:
        losses = [float(row["train/loss"]) for row in csv.DictReader(f) if row.get("train/loss")]
    assert len(losses) == 30 and losses[-1] < 0.3 * losses[0], losses
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    validation = CriticSFTDataset(store=str(store), split="val", instruction="short", critiques=False, limit=1)
    first = [validation.items[i] for i in range(min(4, len(validation)))]
    last = [row for row in samples if row["step"] == samples[-1]["step"]]  # the last validation
    assert [(r["prompt"], r["reference"]) for r in last] == [(i.instruction, i.response) for i in first]
    assert all(VERDICT_ONLY in r["prompt"] and r["output"] for r in last), last
    checkpoint = run / "checkpoints" / "last.ckpt"
    critic = GenerativeModel("preset:llava_tiny", weights=str(checkpoint))
    data = CriticSFTDataset(store=str(store), split="critic", instruction="short", critiques=False)
    images, sentences = [data[i]["image"] for i in range(4)], ["There is a red circle."] * 4
    p = verdict_probabilities(critic.model, critic.processor, images, sentences, "short")
    by_hand = GenerativeModel("preset:llava_tiny")  # the random init, then the checkpoint's weights put in by hand
    untrained = verdict_probabilities(by_hand.model, by_hand.processor, images, sentences, "short")
    trained = read_checkpoint_state_dict(checkpoint)
    by_hand.model.load_state_dict({k.removeprefix("model."): v for k, v in trained.items()})
    assert p == pytest.approx(verdict_probabilities(by_hand.model, by_hand.processor, images, sentences, "short"))
    assert max(abs(a - b) for a, b in zip(p, untrained)) > 1e-3  # the trained weights, not the preset's init

    capsys.readouterr()
    monkeypatch.setenv("VLFORGE_PROGRESS_INTERVAL", "0")  # status lines, as in a log file
    monkeypatch.delenv("VLFORGE_PROGRESS", raising=False)
    assert console("critic", TOOLS, argv=["evaluate", "--store", str(store), "--split", "test", "--checkpoint",
                                          str(checkpoint), "--instruction", "short",
                                          "--modes", "probability", "--limit", "1"]) == 0
    captured = capsys.readouterr()
    assert "vlforge-critic evaluate: probability: accuracy" in captured.out
    status = [line for line in captured.err.splitlines() if is_status_line(line)]
    assert [line.split(", ")[0] for line in status] == ["vlforge-critic evaluate: 1/1 chunks (100.0 %)"] * 2
