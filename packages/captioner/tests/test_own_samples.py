"""A captioner's own samples as rejected captions, through the consoles on a real LMDB ShapesWorld store:
`vlforge-captioner generate` draws K samples per image (with a checkpoint and a source name given on the command
line), `vlforge-captioner score` writes their CHAIR_i, and the preference pairs take the most hallucinating sample
of each image (``rejected: source:<name>``, ``score_above: 0``)."""

from __future__ import annotations

import json

import pytest
import torch

from vlforge.captioner.cli import TOOLS
from vlforge.captioner.data import PreferencePairDataset
from vlforge.captioner.generation.spec import CaptionerSpec, build_captioner
from vlforge.common.console import console
from vlforge.common.errors import VLForgeError
from vlforge.common.metrics.chair import chair, scene_objects
from vlforge.common.records import Caption
from vlforge.common.shapes.build import build_shapes_store
from vlforge.common.store import CaptionStore

SAMPLING = ("captioners:\n  - {name: own, source: preset:llava_tiny, format: dense, samples: 2, seed: 3,\n"
            "     decoding: {max_new_tokens: 10, do_sample: true, temperature: 1.0}}\nsplit: pref\nshear: false\n")


@pytest.fixture
def store(tmp_path):
    """A 12-image ShapesWorld store of its own for each test (they write into it)."""
    path = tmp_path / "store"
    build_shapes_store(path, 12, seed=4, workers=1, split_fractions={"seed": 0.5, "pref": 0.5})
    return str(path)


def _captions(store: str, source: str) -> dict[str, list[Caption]]:
    with CaptionStore(store) as s:
        return {r.image_id: r.captions_by(source=source) for r in s.iter_records(split="pref")}


def test_generate_draws_k_samples_per_image_with_a_checkpoint_and_name_from_the_command_line(store, tmp_path,
                                                                                               capsys):
    trained = build_captioner(CaptionerSpec(name="t", preset_seed=5)).model
    checkpoint = tmp_path / "last.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in trained.state_dict().items()}}, checkpoint)
    config = tmp_path / "sampling.yaml"
    config.write_text(SAMPLING)
    args = ["generate", "--store", store, "--config", str(config), "--limit", "3", "--name", "sft_own",
            "--checkpoint", str(checkpoint)]
    assert console("captioner", TOOLS, args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["name"] == "sft_own" and summary["captioned"] == 3
    captions = {i: c for i, c in _captions(store, "sft_own").items() if c}
    assert len(captions) == 3 and not _captions(store, "own")[next(iter(captions))]
    samples = [c for texts in captions.values() for c in texts]
    assert {c.provenance["sample"] for c in samples} == {0, 1} and all(1 <= len(t) <= 2 for t in captions.values())
    assert all(c.provenance["checkpoint"] == str(checkpoint) and c.kind == "dense" for c in samples)
    # the two samples differ (sampling at T = 1 from a random model): drawn, not copied
    assert any(len({c.text for c in texts}) == 2 for texts in captions.values())
    assert console("captioner", TOOLS, args) == 0  # resumed: nothing left to caption
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["pending"] == 0


def test_generate_mistakes_are_one_line(store, tmp_path, capsys):
    config = tmp_path / "greedy.yaml"
    config.write_text(SAMPLING.replace("do_sample: true", "do_sample: false"))
    assert console("captioner", TOOLS, ["generate", "--store", store, "--config", str(config)]) == 2
    assert "2 samples per image need sampling (decoding.do_sample: true)" in capsys.readouterr().err
    assert console("captioner", TOOLS, ["generate", "--store", store, "--config",
                                        "captioner:generation/shapes_tiny.yaml", "--checkpoint", "x.ckpt"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--checkpoint replaces the captioner of a config with one; " in err and "has 3" in err
    assert len(err.splitlines()) == 1


def test_score_writes_each_captions_chair_i_once(store, capsys):
    with CaptionStore(store, readonly=False) as s:
        records = {i: s.get(i) for i in s.ids("pref")}
        texts = {}
        for image_id, record in records.items():
            present = record.meta["scene_graph"]["objects"][0]["shape"]
            absent = next(x for x in ("circle", "square", "triangle", "star", "hexagon", "diamond")
                          if x not in scene_objects(record.meta["scene_graph"]))
            texts[image_id] = [f"A {present}.", f"A {present} and a {absent}.", ""]
        s.append_captions({i: [Caption(t, "own", "dense") for t in ts] for i, ts in texts.items()})
    assert console("captioner", TOOLS, ["score", "--store", store, "--source", "own", "--split", "pref"]) == 0
    summary = json.loads(capsys.readouterr().out.strip())
    assert summary["scored"] == 2 * len(records) and summary["empty"] == len(records)
    for image_id, captions in _captions(store, "own").items():
        objects = scene_objects(records[image_id].meta["scene_graph"])
        for caption in captions:
            if caption.text:
                assert caption.scores["chair_i"] == chair([caption.text], [objects]).chair_i
        assert sorted(c.scores["chair_i"] for c in captions if c.text) == [0.0, 50.0]
    assert console("captioner", TOOLS, ["score", "--store", store, "--source", "own"]) == 0
    again = json.loads(capsys.readouterr().out.strip())
    assert again["scored"] == 0 and again["already_scored"] == 2 * len(records)
    assert console("captioner", TOOLS, ["score", "--store", store, "--source", "nobody"]) == 2
    assert "has no captions of source 'nobody'" in capsys.readouterr().err


def test_rejected_is_the_worst_hallucinating_sample(store):
    with CaptionStore(store, readonly=False) as s:
        ids = s.ids("pref")
        s.append_captions({i: [Caption("fine", "own", "dense", scores={"chair_i": 0.0}),
                               Caption("bad", "own", "dense", scores={"chair_i": 25.0}),
                               Caption("worst", "own", "dense", scores={"chair_i": 50.0})] for i in ids[:-1]})
        s.append_captions({ids[-1]: [Caption("fine", "own", "dense", scores={"chair_i": 0.0})]})
    pairs = PreferencePairDataset(store, "pref", chosen_kind="dense", rejected="source:own", score_above=0)
    assert len(pairs) == len(ids) - 1 and {pairs[i]["rejected"] for i in range(len(pairs))} == {"worst"}
    everyone = PreferencePairDataset(store, "pref", chosen_kind="dense", rejected="source:own")
    assert len(everyone) == len(ids)  # without score_above the last image's harmless sample is rejected too
    with CaptionStore(store, readonly=False) as s:
        s.append_captions({ids[0]: [Caption("unscored", "own", "dense")]})
    with pytest.raises(VLForgeError, match=f"record '{ids[0]}': a caption of source 'own' has no score 'chair_i'"):
        PreferencePairDataset(store, "pref", chosen_kind="dense", rejected="source:own", score_above=0)
    with pytest.raises(VLForgeError, match="score_above selects among a source's scored captions"):
        PreferencePairDataset(store, "pref", rejected="negative", score_above=0)
