"""What a generative model writes during training: at each validation, its outputs on the same few validation
examples, printed to the log and appended to `samples.jsonl` and `samples.md` in the run folder.

Any LightningModule opts in by defining `sample_outputs(examples) -> list[str]`, where `examples` are items of its
validation dataset (e.g. `{"image", "instruction", "response"}` for a captioner); the callback does nothing for a
module without it, or without a validation set. `response` (else `reference`, else a preference pair's `chosen`) is
shown beside the output when present.
A multi-turn example (`{image?, turns: [[instruction, response], ...]}`, LLaVA's instruction data) is sampled on its
first turn; an example marked `skip` (its image could not be read) is passed over for the next one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl


class SampleOutputsCallback(pl.Callback):
    """Logs `pl_module.sample_outputs` on the first `num_examples` validation examples at each validation."""

    def __init__(self, num_examples: int = 4, max_chars: int = 300) -> None:
        self.num_examples, self.max_chars = num_examples, max_chars

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not callable(getattr(pl_module, "sample_outputs", None)):
            return
        examples = fixed_examples(trainer, self.num_examples)
        if not examples:
            return
        was_training = pl_module.training
        outputs = pl_module.sample_outputs(examples)  # every rank generates (sharded models need them all)
        pl_module.train(was_training)
        log_dir = trainer.log_dir
        if not trainer.is_global_zero:
            return
        rows = [sample_row(trainer.global_step, index, example, output)
                for index, (example, output) in enumerate(zip(examples, outputs, strict=True))]
        print(f"samples at step {trainer.global_step}:", file=sys.stderr)
        for row in rows:
            reference = f"  (reference: {self._clip(row['reference'])})" if row["reference"] else ""
            print(f"  [{row['example']}] {self._clip(row['output'])}{reference}", file=sys.stderr, flush=True)
        if log_dir is not None:
            append_tables(Path(log_dir), rows)

    def _clip(self, text: str) -> str:
        return text if len(text) <= self.max_chars else text[: self.max_chars - 1] + "…"


def fixed_examples(trainer: pl.Trainer, count: int) -> list[Any]:
    """The first `count` usable items of the first validation dataloader's dataset (the same ones at every
    validation), each as `sample_example` makes it."""
    loaders = trainer.val_dataloaders
    if isinstance(loaders, list | tuple):
        loaders = loaders[0] if loaders else None
    dataset = getattr(loaders, "dataset", None)
    if dataset is None or not hasattr(dataset, "__len__"):
        return []
    examples = []
    for index in range(len(dataset)):
        if len(examples) == count:
            break
        example = sample_example(dataset[index])
        if example is not None:
            examples.append(example)
    return examples


def sample_example(item: Any) -> Any:
    """A validation item as `sample_outputs` takes it: None for an item marked `skip`; a multi-turn item as its first
    turn (`instruction`, `response`); any other item unchanged."""
    if not isinstance(item, dict):
        return item
    if "skip" in item:
        return None
    if "turns" in item and "instruction" not in item:
        instruction, response = item["turns"][0]
        return {k: v for k, v in item.items() if k != "turns"} | {"instruction": instruction, "response": response}
    return item


def sample_row(step: int, index: int, example: Any, output: str) -> dict[str, Any]:
    fields = example if isinstance(example, dict) else {}
    return {"step": step, "example": str(fields.get("key", index)), "prompt": str(fields.get("instruction", "")),
            "reference": str(fields.get("response", fields.get("reference", fields.get("chosen", ""))) or ""),
            "output": output}


def append_tables(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    """Append `rows` to samples.jsonl and samples.md (a Markdown table) in `run_dir`."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "samples.jsonl", "a", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    table = run_dir / "samples.md"
    with open(table, "a", encoding="utf-8") as f:
        if table.stat().st_size == 0:
            f.write("| step | example | prompt | reference | output |\n|---|---|---|---|---|\n")
        for row in rows:
            cells = [str(row["step"]), row["example"], row["prompt"], row["reference"], row["output"]]
            f.write("| " + " | ".join(_cell(c) for c in cells) + " |\n")


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")
