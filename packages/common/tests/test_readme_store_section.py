"""The README's store section works as written: its Python block runs (a DataLoader over CaptionDataset with a
transform and the documented collate, 2 workers) and every `vlforge-store` line parses with the real CLI."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import torch

from vlforge.common.shapes.build import build_shapes_store
from vlforge.common.store_cli import build_parser

README = Path(__file__).resolve().parents[3] / "README.md"


def _section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## The caption store in one minute")
    return text[start:text.index("\n## ", start + 1)]


def test_readme_dataloader_example_runs(tmp_path, monkeypatch):
    block = re.search(r"```python\n(.*?)```", _section(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    build_shapes_store("data/shapes.lmdb", 60, seed=1, image_size=32, workers=1)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - the README's own example
    images, records, texts = namespace["images"], namespace["records"], namespace["texts"]
    assert isinstance(images, torch.Tensor) and images.shape[1:] == (3, 32, 32) and images.dtype == torch.float32
    assert 1 <= len(records) <= 8 and len(texts) == len(records) == images.shape[0]
    assert all(r.split == "val" for r in records) and all(isinstance(t, str) and t for t in texts)


def test_readme_store_commands_parse():
    lines = [line.split("#")[0] for line in re.search(r"```bash\n(.*?)```", _section(), re.S).group(1).splitlines()]
    commands = [shlex.split(line)[1:] for line in lines if line.startswith("vlforge-store")]
    assert {c[0] for c in commands} >= {"export", "ids", "sample", "stats", "ingest"}
    parser = build_parser()
    for argv in commands:
        parser.parse_args(argv)
