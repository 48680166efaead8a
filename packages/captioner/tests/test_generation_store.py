"""Generation into a real LMDB ShapesWorld store: several captioners, shearing to the mean alt-text length,
provenance, resume after an interruption, failed images recorded and retried, empty captions kept but never
trained on, checkpoints loaded, generation configs parsed."""

import dataclasses
import logging
import shutil

import pytest
import torch
from transformers import GenerationConfig as HFGenerationConfig

from vlforge.captioner.data import SFTCaptionDataset
from vlforge.captioner.generation.run import generate_into_store
from vlforge.captioner.generation.spec import (
    CaptionerSpec,
    GenerationConfig,
    build_captioner,
    load_generation_config,
)
from vlforge.captioner.generation.store_io import FAILURES_KEY, failures
from vlforge.common.errors import VLForgeError
from vlforge.common.records import ImageRecord
from vlforge.common.shapes.build import build_shapes_store
from vlforge.common.store import CaptionStore

FAST = {"max_new_tokens": 12, "do_sample": False}


@pytest.fixture(scope="module")
def base_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("gen") / "store"
    build_shapes_store(path, 24, seed=11, workers=1, split_fractions={"pool": 0.5, "seed": 0.5})
    return path


@pytest.fixture
def store(base_store, tmp_path):
    path = tmp_path / "store"
    shutil.copytree(base_store, path)
    return str(path)


def _shipped_tiny(limit):
    config = load_generation_config("captioner:generation/shapes_tiny.yaml")
    specs = [dataclasses.replace(s, decoding={**s.decoding, "max_new_tokens": 12}) for s in config.captioners]
    return dataclasses.replace(config, captioners=specs, limit=limit, batch_size=4)


def _captions_of(store, name):
    with CaptionStore(store) as s:
        return {r.image_id: r.captions_by(source=name) for r in s.iter_records(split="pool")}


def test_three_shipped_captioners_caption_the_split_with_shearing_and_provenance(store):
    config = _shipped_tiny(limit=5)
    summaries = generate_into_store(store, config)
    with CaptionStore(store) as s:
        alt = [c.text for r in s.iter_records() for c in r.captions_by(source="alt_text")]
        pool = s.ids("pool")[:5]
    expected_t = round(sum(len(t.split()) for t in alt) / len(alt))
    assert [x.name for x in summaries] == [c.name for c in config.captioners]
    assert all(x.captioned == 5 and x.failed == 0 and x.shear_tokens == expected_t for x in summaries)
    for spec in config.captioners:
        captions = _captions_of(store, spec.name)
        assert sorted(i for i, c in captions.items() if c) == pool
        assert all(len(c) <= 1 for c in captions.values())
        for (caption,) in (c for c in captions.values() if c):
            assert caption.kind == spec.caption_format().kind
            assert len(caption.text.split()) <= expected_t
            p = caption.provenance
            assert p["model"] == spec.source and p["format"] == spec.format and p["decoding"] == spec.decoding
            assert p["shear_tokens"] == expected_t and p["raw_tokens"] >= len(caption.text.split())
            assert p["prompt"] == spec.caption_format().prompt() and p["time"]


def test_shearing_off_keeps_the_whole_generation(store):
    spec = CaptionerSpec(name="unsheared", decoding=FAST)
    (summary,) = generate_into_store(store, GenerationConfig([spec], limit=3, shear=False))
    assert summary.shear_tokens is None
    for captions in _captions_of(store, "unsheared").values():
        for c in captions:
            assert c.provenance["shear_tokens"] is None and len(c.text.split()) == c.provenance["raw_tokens"]


class _StopAfterFirstChunk(logging.Handler):
    def emit(self, record):
        raise KeyboardInterrupt


def test_an_interrupted_run_resumes_without_redoing_or_duplicating(store):
    config = GenerationConfig([CaptionerSpec(name="resumed", decoding=FAST)], batch_size=2, limit=8)
    logger = logging.getLogger("vlforge.captioner.generation.run")
    handler = _StopAfterFirstChunk()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with pytest.raises(KeyboardInterrupt):
            generate_into_store(store, config, chunk_batches=1)
    finally:
        logger.removeHandler(handler)
    first = {i: c[0].to_dict() for i, c in _captions_of(store, "resumed").items() if c}
    assert len(first) == 2
    (summary,) = generate_into_store(store, config, chunk_batches=1)
    assert summary.pending == 6 and summary.captioned == 6
    after = _captions_of(store, "resumed")
    assert sum(len(c) for c in after.values()) == 8
    assert all(after[i][0].to_dict() == c for i, c in first.items())
    (again,) = generate_into_store(store, config)
    assert again.pending == 0 and again.captioned == 0


def test_a_broken_image_is_recorded_as_failed_and_retried_next_run(store, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    with CaptionStore(store, readonly=False) as s:
        s.set_info(image_root=str(images))
        s.put_records(
            [
                ImageRecord("aaa_missing", "pool", 64, 64, image_path="missing.png"),
                ImageRecord("aab_corrupt", "pool", 64, 64, image_bytes=b"not an image"),
            ]
        )
    config = GenerationConfig([CaptionerSpec(name="robust", decoding=FAST)], limit=4)
    (summary,) = generate_into_store(store, config)
    assert summary.captioned == 2 and summary.failed == 2
    with CaptionStore(store) as s:
        failed = failures(s, "robust")
    assert set(failed) == {"aaa_missing", "aab_corrupt"}
    assert "aab_corrupt" in failed["aab_corrupt"] and "missing.png" in failed["aaa_missing"]
    assert not _captions_of(store, "robust")["aaa_missing"]

    with CaptionStore(store) as s:
        s.load_image(s.get(s.ids("pool")[5])).save(images / "missing.png")
    (retry,) = generate_into_store(store, config)
    assert retry.pending == 2 and retry.captioned == 1 and retry.failed == 1
    with CaptionStore(store) as s:
        assert set(failures(s, "robust")) == {"aab_corrupt"}
        assert set(s.info[FAILURES_KEY]) == {"robust"}
    assert len(_captions_of(store, "robust")["aaa_missing"]) == 1


def test_alt_text_fusion_without_alt_text_is_a_recorded_failure(store):
    with CaptionStore(store, readonly=False) as s:
        s.put_records(
            [ImageRecord("aaa_no_alt", "pool", 64, 64, image_bytes=s.get(s.ids("pool")[0]).image_bytes)]
        )
    config = GenerationConfig([CaptionerSpec(name="afc", format="alt_fusion", decoding=FAST)], limit=3)
    (summary,) = generate_into_store(store, config)
    assert summary.failed == 1 and summary.captioned == 2
    with CaptionStore(store) as s:
        assert "no alt-text" in failures(s, "afc")["aaa_no_alt"]
        fused = [
            (r.captions_by(source="alt_text")[0].text, c)
            for r in s.iter_records(source="afc")
            for c in r.captions_by(source="afc")
        ]
    assert len(fused) == 2
    assert all(
        c.kind == "alt_fusion" and f'alt-text is "{alt}"' in c.provenance["prompt"] for alt, c in fused
    )


def test_empty_generations_are_stored_empty_and_never_used_for_training(store):
    with CaptionStore(store) as s:
        seed_split = s.ids("seed")
    image_token = build_captioner(CaptionerSpec(name="x")).processor.tokenizer.convert_tokens_to_ids(
        "<image>"
    )
    blank = CaptionerSpec(
        name="blank",
        format="short",
        decoding={"max_new_tokens": 3, "do_sample": False, "sequence_bias": [[[image_token], 50.0]]},
    )
    (summary,) = generate_into_store(store, GenerationConfig([blank], split="seed", limit=4))
    assert summary.captioned == 4 and summary.empty == 4
    with CaptionStore(store) as s:
        texts = [c.text for i in seed_split[:4] for c in s.get(i).captions_by(source="blank")]
    assert texts == ["", "", "", ""]
    with pytest.raises(VLForgeError, match="no non-empty 'blank' captions"):
        SFTCaptionDataset(store, split="seed", targets={"short": "short"}, source="blank")


def test_a_lightning_checkpoint_loads_into_the_spec_model(tmp_path):
    trained = build_captioner(CaptionerSpec(name="t", preset_seed=5)).model
    ckpt = tmp_path / "last.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in trained.state_dict().items()}}, ckpt)
    loaded = build_captioner(CaptionerSpec(name="t", checkpoint=str(ckpt))).model
    for key, value in trained.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)
    with pytest.raises(VLForgeError, match="does not fit 'preset:qwen2_vl_tiny'"):
        build_captioner(CaptionerSpec(name="t", source="preset:qwen2_vl_tiny", checkpoint=str(ckpt)))


@pytest.mark.parametrize("shipped", ["shapes_tiny.yaml", "paper_mllms.yaml"])
def test_shipped_generation_configs_parse_with_valid_decoding(shipped):
    config = load_generation_config(f"captioner:generation/{shipped}")
    assert len(config.captioners) >= 2
    for spec in config.captioners:
        HFGenerationConfig(**spec.decoding).validate(strict=True)
        spec.caption_format()
    if shipped == "shapes_tiny.yaml":
        sources = {s.source for s in config.captioners}
        assert len(sources) == 3 and len({s.format for s in config.captioners}) == 3
        assert all(build_captioner(s).model is not None for s in config.captioners)
    else:
        assert {s.source for s in config.captioners} == {
            "Qwen/Qwen2-VL-2B-Instruct",
            "llava-hf/llava-1.5-7b-hf",
        }
        assert all(
            s.decoding["max_new_tokens"] == 30 and s.decoding["num_beams"] == 1 for s in config.captioners
        )


def test_generation_config_errors_name_the_key_and_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("captioners:\n  - {name: a, sauce: preset:llava_tiny}\n")
    with pytest.raises(VLForgeError, match=r"bad.yaml: captioners\[0\] has unknown key 'sauce'"):
        load_generation_config(bad)
    bad.write_text("captioners:\n  - {name: a}\n  - {name: a}\n")
    with pytest.raises(VLForgeError, match="repeated: a"):
        load_generation_config(bad)
    bad.write_text("captioners:\n  - {name: gt}\n")
    with pytest.raises(VLForgeError, match="reserved"):
        load_generation_config(bad)


@pytest.mark.parametrize("entry, top, message", [
    ("{name: a, source: 5}", "", "source must be str, got int 5"),
    ("{name: a, trust_remote_code: 'no'}", "", "trust_remote_code must be bool, got str 'no'"),
    ("{name: a, seed: true}", "", "seed must be int, got bool True"),
    ("{name: a, decoding: [1]}", "", "decoding must be"),
    ("{name: a}", "batch_size: '8'\n", "batch_size must be int, got str '8'"),
    ("{name: a}", "shear: 'off'\n", "shear must be bool, got str 'off'"),
    ("{name: a}", "split: 3\n", "split must be str, got int 3"),
    ("{name: a}", "limit: -4\n", "limit must be >= 1, got -4"),
])
def test_generation_config_values_of_the_wrong_type_are_one_line_errors(tmp_path, entry, top, message):
    """Issue 16 item 9: a wrong type is named with the file, never a traceback later (or a truthy string)."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"{top}captioners:\n  - {entry}\n")
    with pytest.raises(VLForgeError, match=r"bad.yaml: .*" + message.replace("[", r"\[").replace("(", r"\(")):
        load_generation_config(bad)
