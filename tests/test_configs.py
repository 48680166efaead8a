"""Every YAML in the repository parses and instantiates (run=False) with the console it belongs to.

Convention (documented in packages/common/README.md, "Running a package"):
- packages/<pkg>/src/vlforge/<pkg>/configs/**/*.yaml belong to `vlforge-<pkg>` (common's to any console);
- experiments/<pkg>/**/*.yaml hold an experiment's deltas for `vlforge-<pkg>`;
- a YAML is a CLI config when one of its top-level keys is a CLI key (model, data, trainer, seed_everything, ...)
  and it is not under a `presets/` folder; other YAML under configs/ (model presets of vlforge.common.presets,
  caption formats) is data for its package and tested there;
- each CLI config is validated after the console's automatic defaults, stacked onto a complete tiny base (the toy
  LitModule + DataModule) and then onto the configs named in its `# vlforge-stack: A B ...` comment line (package
  shorthand like captioner:model/sft_tiny.yaml, or paths relative to the repository root), so a fragment is
  checked on its own; model and data fragments name their class_path;
- presets that ask for a GPU are instantiated with the accelerator switched to cpu when no GPU is present;
- a config that loads a real model by hub name (a paper-scale config) says `# vlforge-check: parse` and is parsed
  and type-checked but not instantiated (no model hub here).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch import LightningModule

from vlforge.common.runs import check_config

REPO = Path(__file__).resolve().parents[1]
TOY_DIR = REPO / "packages" / "common" / "tests" / "toy"
TOY_BASE = TOY_DIR / "toy_base.yaml"
PACKAGES = ("common", "vlm", "captioner", "critic", "rewriter")

if str(TOY_DIR) not in sys.path:
    sys.path.insert(0, str(TOY_DIR))


def _console_of(path: Path) -> str:
    relative = path.relative_to(REPO)
    if relative.parts[0] == "experiments":
        area = relative.parts[1]
        if area not in PACKAGES or area == "common":
            raise AssertionError(
                f"{relative}: experiments/<area>/ must be one of vlm, captioner, critic, rewriter"
            )
        return area
    return relative.parts[1]


CLI_KEYS = {
    "model",
    "data",
    "trainer",
    "seed_everything",
    "gradient_checkpointing",
    "run_name",
    "tensorboard",
}


def _is_cli_config(path: Path) -> bool:
    content = yaml.safe_load(path.read_text())
    return "presets" not in path.parts and isinstance(content, dict) and bool(CLI_KEYS & content.keys())


def _all_yaml() -> list[Path]:
    found = [*REPO.glob("packages/*/src/vlforge/*/configs/**/*.yaml"), *REPO.glob("experiments/**/*.yaml")]
    return sorted(p for p in found if ".venv" not in p.parts and _is_cli_config(p))


def _parse_only(path: Path) -> bool:
    return any(line.strip() == "# vlforge-check: parse" for line in path.read_text().splitlines())


def _declared_stack(path: Path) -> list[str]:
    """The configs a file's `# vlforge-stack:` comment says it goes on top of, in order."""
    stack: list[str] = []
    for line in path.read_text().splitlines():
        if line.startswith("# vlforge-stack:"):
            for item in line.split(":", 1)[1].split():
                stack.append(item if ":" in item or Path(item).is_absolute() else str(REPO / item))
    return stack


def _model_class_path(stack: list[str]) -> str:
    """The model class_path that the last file of the stack naming one sets: what the CLI must build."""
    from vlforge.common.cli import resolve_config

    found = ""
    for item in stack:
        model = (yaml.safe_load(Path(resolve_config(item)).read_text()) or {}).get("model")
        if isinstance(model, dict) and model.get("class_path"):
            found = model["class_path"]
    return found


def test_the_shipped_presets_are_found() -> None:
    names = {p.name for p in _all_yaml()}
    assert {
        "cpu.yaml",
        "ddp.yaml",
        "ddp_cpu_2.yaml",
        "deepspeed_zero2.yaml",
        "deepspeed_zero3.yaml",
        "deepspeed_zero3_offload.yaml",
        "bf16-mixed.yaml",
        "gradient_checkpointing.yaml",
    } <= names


@pytest.mark.parametrize("path", _all_yaml(), ids=lambda p: str(p.relative_to(REPO)))
def test_yaml_parses_and_instantiates(path: Path, tmp_path: Path) -> None:
    content = yaml.safe_load(path.read_text()) or {}
    args = ["--config", str(TOY_BASE)]
    for base in _declared_stack(path):
        args += ["--config", base]
    args += ["--config", str(path), "--run_root", str(tmp_path)]
    accelerator = (content.get("trainer") or {}).get("accelerator")
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        args += ["--trainer.accelerator", "cpu", "--trainer.devices", "1"]
    if content.get("gradient_checkpointing"):
        # the toy network has nothing to checkpoint: validate the switch on a tiny GPT-2 elsewhere
        args += ["--gradient_checkpointing", "false"]
    expected = _model_class_path([str(TOY_BASE), *_declared_stack(path), str(path)])
    cli = check_config(_console_of(path), args, instantiate=not _parse_only(path))
    if _parse_only(path):
        assert cli.config.model.class_path == expected
    else:
        assert f"{type(cli.model).__module__}.{type(cli.model).__qualname__}" == expected


def _training_configs() -> list[Path]:
    """Shipped configs that name a LitModule."""
    return [p for p in _all_yaml() if "model" in (yaml.safe_load(p.read_text()) or {})]


def test_training_configs_are_found() -> None:
    names = {str(p.relative_to(REPO)) for p in _training_configs()}
    assert {"packages/captioner/src/vlforge/captioner/configs/model/sft_tiny.yaml",
            "packages/captioner/src/vlforge/captioner/configs/model/sft_paper.yaml",
            "packages/vlm/src/vlforge/vlm/configs/model/clip_tiny.yaml"} <= names


@pytest.mark.parametrize("path", _training_configs(), ids=lambda p: str(p.relative_to(REPO)))
def test_training_config_stops(path: Path, tmp_path: Path) -> None:
    """Composed as the console composes it (defaults, the toy base's model and data but not its trainer, the file's
    declared stack, the file), a shipped training config has a stopping rule: max_steps > 0, or max_epochs >= 1
    (exactly 1, the papers' recipe, for a config that loads a real model). Lightning's own default (max_steps -1,
    max_epochs None) means 1000 epochs."""
    base = tmp_path / "toy_base_without_trainer.yaml"
    base.write_text(yaml.safe_dump({k: v for k, v in yaml.safe_load(TOY_BASE.read_text()).items() if k != "trainer"}))
    args = []
    for config in [str(base), *_declared_stack(path), str(path)]:
        args += ["--config", config]
    config = check_config(_console_of(path), [*args, "--run_root", str(tmp_path)], instantiate=False).config
    module, name = config.model.class_path.rsplit(".", 1)
    if getattr(importlib.import_module(module), name).training_step is LightningModule.training_step:
        return  # a predict-only module (caption generation): nothing to bound
    trainer = config.trainer
    max_steps, max_epochs = trainer.max_steps, trainer.max_epochs
    assert (max_steps is not None and max_steps > 0) or (max_epochs is not None and max_epochs >= 1), (
        f"{path.relative_to(REPO)} runs unbounded (max_steps {max_steps}, max_epochs {max_epochs})")
    if _parse_only(path):
        assert max_epochs == 1 and max_steps in (None, -1), f"{path.relative_to(REPO)}: real recipes train 1 epoch"
