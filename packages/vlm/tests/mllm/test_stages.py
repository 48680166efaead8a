"""The three LLaVA stages from the shipped tiny configs through the vlforge-vlm console on a ShapesWorld store:
each stage starts from the previous one's checkpoint and trains exactly its parts; a checkpoint of another
architecture is refused in one line naming both; the last stage exports to a folder transformers loads; the real
recipes parse."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from vlforge.common.checkpoint import read_checkpoint_state_dict
from vlforge.common.cli import run_cli
from vlforge.common.errors import VLForgeError
from vlforge.common.runs import check_config, last_checkpoint
from vlforge.common.store import CaptionStore
from vlforge.vlm.mllm.export import export_hf_llava, lit_module_from_checkpoint
from vlforge.vlm.mllm.shapes_instruct import shapes_llava_rows
from vlforge.vlm.mllm.stage_model import LlavaStageModel

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
TINY_VISION = {"image_size": 32, "patch_size": 8, "hidden_size": 64, "intermediate_size": 128,
               "num_hidden_layers": 2, "num_attention_heads": 4}


def _fit(stage: str, root, *extra: str) -> None:
    assert run_cli("vlm", ["fit", "--config", f"vlm:mllm/{stage}_tiny.yaml", "--run_root", str(root),
                           "--trainer.max_steps", "3", "--trainer.val_check_interval", "3", "--seed_everything", "0",
                           *QUIET, *extra]) == 0


@pytest.fixture(scope="module")
def chain(shapes_store, tmp_path_factory):
    """The three tiny stages, 3 steps each, chained through their run folders."""
    root = tmp_path_factory.mktemp("llava_runs")
    data = ["--data.init_args.store", shapes_store, "--data.init_args.batch_size", "4", "--data.init_args.val_limit",
            "4"]
    _fit("pre_align", root, *data)
    _fit("pretrain", root, *data, "--model.init_args.model.init_args.init_from", str(root / "llava_pre_align_tiny"),
         "--model.init_args.model.init_args.freeze.vision_tower_last_layers", "1")
    instruct = root / "instruct.json"
    with CaptionStore(shapes_store) as store:
        rows = shapes_llava_rows(store, "seed", instruct, limit=8)
    rows.append({"id": "text-only", "conversations": [{"from": "human", "value": "Say yes."},
                                                      {"from": "gpt", "value": "yes"}]})
    rows.append({"id": "bad-order", "conversations": [{"from": "gpt", "value": "no"}]})
    instruct.write_text(json.dumps(rows))
    (root / "corrupt.png").write_bytes(b"not a png")  # a validation row whose image cannot be read: skipped
    corrupt = {"id": "corrupt", "image": "corrupt.png", "conversations": rows[0]["conversations"]}
    (root / "val.json").write_text(json.dumps([corrupt, *rows[:4]]))
    _fit("instruct", root, "--data.init_args.json", str(instruct), "--data.init_args.batch_size", "4",
         "--data.init_args.val_json", str(root / "val.json"),
         "--model.init_args.model.init_args.init_from", str(root / "llava_pretrain_tiny"))
    return {stage: read_checkpoint_state_dict(last_checkpoint(root / f"llava_{stage}_tiny"))
            for stage in ("pre_align", "pretrain", "instruct")} | {"root": root}


def _fresh() -> dict[str, torch.Tensor]:
    model = LlavaStageModel("clip", "preset:llama_tiny", vision_config=TINY_VISION, vision_feature_layer=-1).model
    return {f"model.{k}": v for k, v in model.state_dict().items()}


def _changed(before: dict, after: dict) -> set[str]:
    return {k for k in before if not torch.equal(before[k], after[k])}


def _part(name: str) -> str:
    if "multi_modal_projector" in name:
        return "projector"
    return "vision_tower" if "vision_tower" in name else "llm"


def test_each_stage_starts_from_the_previous_and_trains_its_parts(chain):
    fresh = _fresh()
    pre_align = _changed(fresh, chain["pre_align"])
    assert pre_align and {_part(k) for k in pre_align} == {"projector"}
    pretrain = _changed(chain["pre_align"], chain["pretrain"])
    assert {_part(k) for k in pretrain} == {"projector", "llm", "vision_tower"}
    vision = {k for k in pretrain if _part(k) == "vision_tower"}
    assert vision and all(".encoder.layers.1." in k for k in vision)  # the last 1 of 2 layers only
    instruct = _changed(chain["pretrain"], chain["instruct"])
    assert {_part(k) for k in instruct} == {"projector", "llm"}
    # the instruct stage started from the pre-train weights: its frozen vision tower is pre-train's, not fresh
    tower = [k for k in fresh if _part(k) == "vision_tower" and ".encoder.layers.1." in k]
    assert all(torch.equal(chain["instruct"][k], chain["pretrain"][k]) for k in tower)
    assert any(not torch.equal(chain["instruct"][k], fresh[k]) for k in tower)


def test_each_stage_samples_its_first_validation_examples_with_their_prompts(chain):
    for stage in ("pre_align", "pretrain"):  # caption data: the image alone (no instruction) prompts its caption
        samples = _samples(chain["root"] / f"llava_{stage}_tiny")
        assert len(samples) == 4 and all(row["reference"] and row["step"] == 3 for row in samples), samples
    # instruction data: each conversation sampled on its first turn; the row whose image is unreadable passed over
    rows = json.loads((chain["root"] / "val.json").read_text())[1:]
    samples = _samples(chain["root"] / "llava_instruct_tiny")
    assert [row["example"] for row in samples] == [r["id"] for r in rows]
    for sample, row in zip(samples, rows, strict=True):
        human, gpt = row["conversations"][0]["value"], row["conversations"][1]["value"]
        assert sample["prompt"] == human.replace("<image>", "").strip() and sample["prompt"]
        assert sample["reference"] == gpt and sample["step"] == 3


def _samples(run) -> list[dict]:
    return [json.loads(line) for line in (run / "version_0" / "samples.jsonl").read_text().splitlines()]


def test_a_checkpoint_of_another_architecture_is_refused_naming_both(chain):
    previous = str(chain["root"] / "llava_pre_align_tiny")
    with pytest.raises(VLForgeError) as other_lm:
        LlavaStageModel("clip", "preset:gpt2_tiny", vision_config=TINY_VISION, vision_feature_layer=-1,
                        init_from=previous).load_init_weights()
    message = str(other_lm.value)
    assert "\n" not in message and "preset:gpt2_tiny" in message and "preset:llama_tiny" in message
    wider = dict(TINY_VISION, hidden_size=32, intermediate_size=64)
    with pytest.raises(VLForgeError) as other_projector:
        LlavaStageModel("clip", "preset:llama_tiny", vision_config=wider, vision_feature_layer=-1,
                        init_from=previous).load_init_weights()
    assert "projector 64->64->64" in str(other_projector.value) and "projector 32->64->64" in str(other_projector.value)
    with pytest.raises(VLForgeError, match="no such checkpoint or run folder"):
        LlavaStageModel("clip", "preset:llama_tiny", vision_config=TINY_VISION,
                        init_from=str(chain["root"] / "nope")).load_init_weights()


def test_the_instruct_checkpoint_exports_and_loads_in_transformers(chain, tmp_path, image_inputs):
    checkpoint = last_checkpoint(chain["root"] / "llava_instruct_tiny")
    module = lit_module_from_checkpoint(checkpoint).eval()
    folder = export_hf_llava(module, tmp_path / "hf")
    loaded = AutoModelForImageTextToText.from_pretrained(folder).eval()
    processor = AutoProcessor.from_pretrained(folder)
    inputs = image_inputs(processor)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).logits, module.model(**inputs).logits)


def test_instruct_data_skips_bad_rows_with_their_ids_and_keeps_text_only_rows(chain, caplog):
    from vlforge.vlm.mllm.instruct_data import LlavaConversations

    dataset = LlavaConversations(str(chain["root"] / "instruct.json"))
    assert dataset.summary.skipped["turn_order"] == ["bad-order"]
    examples = [dataset[i] for i in range(len(dataset))]
    text_only = [e for e in examples if e["key"] == "text-only"]
    assert text_only and "image" not in text_only[0] and text_only[0]["turns"] == [["Say yes.", "yes"]]
    with_image = [e for e in examples if "image" in e]
    assert with_image and all("<image>" not in t[0] for e in with_image for t in e["turns"])


@pytest.mark.parametrize("stage", ["pre_align", "pretrain", "instruct"])
def test_the_real_recipes_parse(stage):
    cli = check_config("vlm", ["--config", f"vlm:mllm/{stage}.yaml", "--config", "common:trainer/deepspeed_zero3.yaml"],
                       instantiate=False)
    model = cli.config["fit"]["model"]["init_args"] if "fit" in cli.config else cli.config["model"]["init_args"]
    lr = {"pre_align": 1e-3, "pretrain": 2e-5, "instruct": 2e-5}[stage]
    assert model["lr"] == pytest.approx(lr) and model["warmup_ratio"] == pytest.approx(0.01)
    assert model["weight_decay"] == 0.0
    if stage == "pretrain":
        assert model["part_lr"] == {"vision_tower": pytest.approx(2e-6)}
        assert model["model"]["init_args"]["freeze"]["vision_tower_last_layers"] == 12


def test_evaluate_mllm_writes_vqa_per_type_pope_per_strategy_and_chair(chain, shapes_store, tmp_path, capsys):
    from vlforge.common.metrics.pope import pope_metrics
    from vlforge.vlm.mllm.evaluate_cli import main
    from vlforge.vlm.mllm.questions import shapes_vqa_questions

    checkpoint = last_checkpoint(chain["root"] / "llava_instruct_tiny")
    out = tmp_path / "eval.json"
    assert main(["--checkpoint", str(checkpoint), "--store", shapes_store, "--split", "test", "--limit", "4",
                 "--chair_limit", "2", "--batch_size", "8", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["vqa"]["all"]["total"] == len(shapes_vqa_questions(shapes_store, "test", limit=4))
    assert set(result["pope"]) == {"random", "popular", "adversarial"}
    for strategy, metrics in result["pope"].items():
        rows = [a for a in result["answers"] if a["type"] == f"pope_{strategy}"]
        assert metrics == pope_metrics([a["prediction"] for a in rows], [a["answer"] for a in rows])
    assert len(result["captions"]) == 2 and "chair_i" in result["chair"]
    assert "POPE adversarial" in capsys.readouterr().out
    with pytest.raises(VLForgeError, match="one of --checkpoint"):
        main(["--store", shapes_store, "--out", str(out)])


def test_a_batch_whose_image_tokens_do_not_match_its_images_is_an_error_naming_the_sample():
    from vlforge.vlm.mllm.lit_stage import LlavaStageLitModule
    from vlforge.vlm.mllm.stage_model import LlavaStageModel as Model

    from .conftest import random_image

    module = LlavaStageLitModule(Model("clip", "preset:llama_tiny", vision_config=TINY_VISION,
                                       vision_feature_layer=-1), prompt_style="plain")
    good = {"key": "good", "image": random_image(0, (32, 32)), "instruction": "", "response": "A red circle."}
    batch = module.on_before_batch_transfer([good], 0)
    assert int((batch["input_ids"] == module.model.config.image_token_index).sum()) == 16
    sneaky = {"key": "sneaky", "instruction": "<image>", "response": "no image given"}
    with pytest.raises(VLForgeError, match="sample sneaky: 1 image tokens"):
        module.on_before_batch_transfer([good, sneaky], 0)
