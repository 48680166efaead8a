"""Zero-shot classification: ShapesWorld labels from the scene graph, prompt-ensembled classification against
a direct implementation, image folders, missing scene graphs, the wiring into ContrastiveLitModule."""

from __future__ import annotations

import io

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from vlforge.common.errors import VLForgeError
from vlforge.common.records import Caption, ImageRecord
from vlforge.common.shapes.vocabulary import COLOURS, SHAPES
from vlforge.common.store import CaptionStore
from vlforge.vlm.data import ContrastiveDataModule
from vlforge.vlm.evaluation import encode_split
from vlforge.vlm.linear_probe import shapes_linear_probe
from vlforge.vlm.lit_contrastive import ContrastiveLitModule
from vlforge.vlm.models import ContrastiveModel, OpenClipImageTower, OpenClipTextTower
from vlforge.vlm.zero_shot import TEMPLATES, image_folder_zero_shot, shapes_labels, shapes_zero_shot

TINY = {"embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
        "text_cfg": {"context_length": 24, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}}


@pytest.fixture(scope="module")
def model() -> ContrastiveModel:
    torch.manual_seed(0)
    return ContrastiveModel(OpenClipImageTower(TINY), OpenClipTextTower(TINY)).eval()


@pytest.fixture(scope="module")
def encoding(model, shapes_store):
    return encode_split(model, shapes_store, "pool", image_size=32)


def _direct_labels(objects: list[dict], task: str, rule: str) -> int | None:
    if task == "count":
        return len(objects) - 1
    if rule == "single":
        chosen = objects if len(objects) == 1 else []
    else:
        top = max(o["radius"] for o in objects)
        chosen = [o for o in objects if o["radius"] == top]
    if len(chosen) != 1:
        return None
    return (SHAPES if task == "shape" else COLOURS).index(chosen[0][task])


@pytest.mark.parametrize("task, rule", [("shape", "largest"), ("colour", "largest"), ("colour", "single"),
                                        ("count", "largest")])
def test_shapes_labels_follow_the_scene_graph(encoding, task, rule):
    expected = [(i, _direct_labels(m["scene_graph"]["objects"], task, rule))
                for i, m in enumerate(encoding.meta)]
    expected = [(i, label) for i, label in expected if label is not None]
    got = shapes_labels(encoding, task, rule)
    assert list(zip(got.kept.tolist(), got.labels.tolist(), strict=True)) == expected
    assert 0 < len(expected) < len(encoding.meta) or task == "count"
    if task == "count":
        assert got.class_names == ["one shape", "two shapes", "three shapes", "four shapes"]


def _direct_top1(model, image_features, class_names, templates, labels) -> float:
    weights = []
    for name in class_names:
        with torch.no_grad():
            texts = model.encode_text(model.tokenize([t.format(name) for t in templates]))
        weights.append(F.normalize(F.normalize(texts, dim=-1).mean(0), dim=0))
    predicted = (image_features @ torch.stack(weights).T).argmax(1)
    return 100.0 * (predicted == labels).float().mean().item()


def test_shapes_zero_shot_equals_a_direct_prompt_ensemble(model, encoding):
    result = shapes_zero_shot(model, encoding)
    assert set(result) == {"shape", "colour", "count"}
    assert "top5" in result["shape"] and "top5" in result["colour"] and "top5" not in result["count"]
    for task in ("shape", "colour", "count"):
        labels = shapes_labels(encoding, task)
        direct = _direct_top1(model, encoding.image_features[labels.kept], labels.class_names,
                              TEMPLATES[task], labels.labels)
        assert result[task]["top1"] == pytest.approx(direct, abs=1e-4)
        assert result[task]["num_images"] == len(labels.kept)
        assert result[task]["top1"] <= result[task].get("top5", 100.0)


def _png(colour: tuple[int, int, int]) -> Image.Image:
    image = Image.new("RGB", (32, 32), (128, 128, 128))
    image.paste(colour, (8, 8, 24, 24))
    return image


def test_image_folder_classes_come_from_folder_names(tmp_path, model):
    colours = {"red_square": (220, 30, 30), "blue_square": (30, 70, 220), "green_square": (30, 170, 50)}
    for n, (name, rgb) in enumerate(colours.items()):
        (tmp_path / name / "sub").mkdir(parents=True)
        _png(rgb).save(tmp_path / name / f"{n}.png")
        _png(rgb).save(tmp_path / name / "sub" / f"{n}.jpg")
    (tmp_path / "red_square" / "notes.txt").write_text("not an image")
    result = image_folder_zero_shot(model, tmp_path, image_size=32)
    assert result["num_images"] == 6 and result["num_classes"] == 3 and "top5" not in result
    from vlforge.vlm.zero_shot import ImageFolderImages

    dataset = ImageFolderImages(tmp_path, 32)
    assert dataset.class_names == ["blue square", "green square", "red square"]
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    labels = torch.tensor([dataset[i][1] for i in range(len(dataset))])
    with torch.no_grad():
        features = model.encode_image(images)
    direct = _direct_top1(model, features, dataset.class_names, TEMPLATES["image_folder"], labels)
    assert result["top1"] == pytest.approx(direct, abs=1e-4)


def test_image_folder_refuses_links_out_and_too_few_classes(tmp_path, model):
    outside = tmp_path / "outside.png"
    _png((0, 0, 0)).save(outside)
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    _png((255, 0, 0)).save(root / "a" / "x.png")
    with pytest.raises(VLForgeError, match="class folder 'b' holds no image"):
        image_folder_zero_shot(model, root, image_size=32)
    with pytest.raises(VLForgeError, match="at least 2 class folders, found 0"):
        image_folder_zero_shot(model, root / "a", image_size=32)
    (root / "b" / "link.png").symlink_to(outside)
    with pytest.raises(VLForgeError, match="leads outside the folder"):
        image_folder_zero_shot(model, root, image_size=32)


def test_a_store_without_scene_graphs_is_a_one_line_error(tmp_path, model):
    buffer = io.BytesIO()
    _png((255, 0, 0)).save(buffer, format="PNG")
    store = CaptionStore.create(tmp_path / "plain")
    store.put_records([ImageRecord(image_id="img-1", split="test", width=32, height=32,
                                   image_bytes=buffer.getvalue(),
                                   captions=[Caption("a red square", "gt", "short")])])
    store.close()
    encoding = encode_split(model, tmp_path / "plain", "test", image_size=32)
    with pytest.raises(VLForgeError) as error:
        shapes_zero_shot(model, encoding, ["colour"])
    message = str(error.value)
    assert "\n" not in message and "plain" in message and "'img-1'" in message and "zero-shot" in message


def test_validate_logs_zero_shot_and_linear_probe(shapes_store, model):
    lit = ContrastiveLitModule(model, zero_shot_tasks=["colour", "count"], linear_probe_tasks=["count"],
                               linear_probe_train_split="pool")
    data = ContrastiveDataModule(shapes_store, train_captions=[{"source": "gt", "kind": "short"}],
                                 image_size=32, eval_batch_size=64)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False)
    logged = trainer.validate(lit, datamodule=data, verbose=False)[0]
    val = encode_split(model, shapes_store, "val", image_size=32)
    direct = shapes_zero_shot(model, val, ["colour", "count"])
    assert logged["val/zero_shot_colour_top1"] == pytest.approx(direct["colour"]["top1"], abs=1e-3)
    assert logged["val/zero_shot_colour_top5"] == pytest.approx(direct["colour"]["top5"], abs=1e-3)
    assert logged["val/zero_shot_count_top1"] == pytest.approx(direct["count"]["top1"], abs=1e-3)
    probe_train = encode_split(model, shapes_store, lit.hparams.linear_probe_train_split, image_size=32)
    probe = shapes_linear_probe(probe_train, val, ["count"])
    assert logged["val/linear_probe_count"] == pytest.approx(probe["count"]["accuracy"], abs=1e-3)
    assert "val/zero_shot_shape_top1" not in logged and "val/t2i_r1" in logged
    with pytest.raises(VLForgeError, match="'size' is not one of shape, colour, count"):
        ContrastiveLitModule(model, zero_shot_tasks=["size"])
