"""Exact resume of every shipped data module: a console fit killed with SIGKILL after its step-K checkpoint and
resumed with ``--ckpt_path last`` ends with the same weights as the same fit run uninterrupted (bit for bit).

One case per data module (and per LitModule that draws random numbers of its own, as BLIP's hard-negative mining):
vlm's ContrastiveDataModule under CLIP and BLIP, the LLaVA stages' CaptionPairsDataModule (pre-align; pre-train
shares it) and LlavaInstructDataModule, the captioner's SFT and preference data modules, the critic's
CriticDataModule and the rewriter's SFT and PRO pair-file data modules (the PPO step's resume is
packages/rewriter/tests/test_ppo_training.py::test_ppo_fit_resumes_exactly). Each fit crosses an epoch boundary after
the kill, so both the mid-epoch position and the next epoch's order are exercised."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import torch
import yaml

from vlforge.common.shapes.build import build_shapes_store
from vlforge.common.store import CaptionStore
from vlforge.rewriter.query_pairs import Candidate, QueryPairRow
from vlforge.vlm.mllm.shapes_instruct import shapes_llava_rows

KILL_AFTER, STEPS = 3, 9


class Case(NamedTuple):
    """A console module, its shipped configs, and ``data`` / ``model`` init_args overrides; strings name the inputs
    fixture's files as "{store}", "{sft_pairs}", "{pro_pairs}", "{llava_json}"."""

    module: str
    configs: list[str]
    data: dict[str, Any]
    model: dict[str, Any] = {}


STORE = {"store": "{store}", "num_workers": 0}
CASES = {
    "vlm_contrastive": Case("vlforge.vlm.cli", ["vlm:model/clip_tiny.yaml", "vlm:data/shapes_alt_text_gt_short.yaml"],
                            {**STORE, "batch_size": 16, "val_split": None, "test_split": None}),
    "vlm_blip": Case("vlforge.vlm.cli", ["vlm:model/blip_tiny.yaml", "vlm:data/shapes_alt_text_gt_short.yaml"],
                     {**STORE, "batch_size": 16, "val_split": None, "test_split": None}),
    "llava_caption_pairs": Case("vlforge.vlm.cli", ["vlm:mllm/pre_align_tiny.yaml"],
                                {**STORE, "batch_size": 8, "val_split": None, "train_limit": 48}),
    "llava_instruct": Case("vlforge.vlm.cli", ["vlm:mllm/instruct_tiny.yaml"],
                           {"json": "{llava_json}", "batch_size": 4, "num_workers": 0},
                           {"model": {"init_args": {"init_from": None}}}),
    "captioner_sft": Case("vlforge.captioner.cli", ["captioner:model/sft_tiny.yaml", "captioner:data/shapes_sft.yaml"],
                          {**STORE, "batch_size": 8, "val_split": None, "train_limit": 48}),
    "captioner_preference": Case("vlforge.captioner.cli", ["captioner:model/preference_tiny.yaml",
                                                           "captioner:data/shapes_preference.yaml"],
                                 {**STORE, "batch_size": 8, "train_limit": 48}),
    "critic": Case("vlforge.critic.cli", ["critic:shapes_tiny.yaml"],
                   {**STORE, "train_split": "seed", "val_split": None, "critiques": False, "train_limit": 4,
                    "batch_size": 8}),
    "rewriter_sft": Case("vlforge.rewriter.cli", ["rewriter:sft_tiny.yaml"],
                         {"train_file": "{sft_pairs}", "batch_size": 8}),
    "rewriter_pro": Case("vlforge.rewriter.cli", ["rewriter:pro_tiny.yaml"],
                         {"train_file": "{pro_pairs}", "batch_size": 4}),
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, str]:
    """A ShapesWorld store, LLaVA JSON instruction rows of its seed split, and D_SFT / D_PRO pair files whose rows
    are the pool split's queries with 4 of the image's other captions (gt, alt-text, negatives) as candidates."""
    root = tmp_path_factory.mktemp("resume")
    store = root / "store"
    build_shapes_store(store, 240, seed=0, image_size=32, workers=1,
                       split_fractions={"pool": 0.4, "seed": 0.25, "pref": 0.25, "val": 0.05, "test": 0.05})
    llava_json = root / "llava" / "instruct.json"
    rows = []
    with CaptionStore(store) as source:
        llava_json.parent.mkdir()
        llava_json.write_text(json.dumps(shapes_llava_rows(source, "seed", llava_json, limit=8)))  # 20 rows
        for record in source.iter_records(split="pool"):
            query = record.captions_by(source="gt", kind="query")[0].text
            texts = [c.text for c in record.captions if c.kind not in ("query", "dense")][:4]  # short ones
            candidates = [Candidate(text, score=1.0 - 0.1 * rank, rank=rank + 1, similarity=0.5, turn=0)
                          for rank, text in enumerate(texts)]
            rows.append(QueryPairRow(f"{record.image_id}#0", record.image_id, query, 0.0, 20, "low", candidates))
    pairs = {"sft_pairs": rows[:40], "pro_pairs": rows[:20]}
    assert all(len(r.candidates) == 4 for r in rows[:40])  # PRO's num_candidates
    for name, chosen in pairs.items():
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r.to_dict()) + "\n" for r in chosen))
    return {"store": str(store), "llava_json": str(llava_json), **{n: str(root / f"{n}.jsonl") for n in pairs}}


def _filled(value: Any, inputs: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _filled(v, inputs) for k, v in value.items()}
    return value.format(**inputs) if isinstance(value, str) else value


def _command(case: str, inputs: dict[str, str], root: Path) -> list[str]:
    """The fit of ``case`` into the run root ``root`` (its delta config written there)."""
    module, configs, data, model = CASES[case]
    root.mkdir(parents=True, exist_ok=True)
    delta = root / "delta.yaml"
    delta.write_text(yaml.safe_dump({
        "data": {"init_args": _filled(data, inputs)},
        "trainer": {"max_steps": STEPS, "limit_val_batches": 0, "enable_progress_bar": False,
                    "enable_model_summary": False,
                    "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                                   "init_args": {"every_n_train_steps": KILL_AFTER, "save_last": True,
                                                 "save_top_k": -1, "filename": "{step}"}}]},
        **({"model": {"init_args": model}} if model else {}),
    }))
    args = [a for c in configs for a in ("--config", c)]
    return [sys.executable, "-m", module, "fit", *args, "--config", str(delta), "--seed_everything", "0",
            "--run_root", str(root)]


def _checkpoints(root: Path) -> Path:
    """The run folder's checkpoints (<run_root>/<package>/version_0/checkpoints), once it exists."""
    found = list(root.glob("*/version_*/checkpoints"))
    return found[0] if found else root / "none"


def _weights(root: Path) -> dict:
    state = torch.load(_checkpoints(root) / "last.ckpt", weights_only=True)
    assert state["global_step"] == STEPS
    return state["state_dict"]


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_fit_killed_after_k_steps_and_resumed_equals_an_uninterrupted_fit(case, inputs, tmp_path):
    """The uninterrupted fit and the one to be killed run side by side (one torch thread each)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    # logs go to files, not pipes: a full pipe would stall a fit
    with open(tmp_path / "straight.log", "w+") as straight_log, open(tmp_path / "killed.log", "w+") as killed_log:
        whole = subprocess.Popen(_command(case, inputs, straight), env=env, stdout=subprocess.DEVNULL,
                                 stderr=straight_log)
        process = subprocess.Popen(_command(case, inputs, killed), env=env, stdout=subprocess.DEVNULL,
                                   stderr=killed_log)
        while process.poll() is None and not ((_checkpoints(killed) / "last.ckpt").exists()
                                              and (_checkpoints(killed) / f"step={KILL_AFTER}.ckpt").exists()):
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        killed_log.seek(0)
        assert process.returncode == -signal.SIGKILL, killed_log.read()[-3000:]  # killed before the fit ended
        whole.wait()
        straight_log.seek(0)
        assert whole.returncode == 0, straight_log.read()[-3000:]
    saved = torch.load(_checkpoints(killed) / "last.ckpt", weights_only=True)["global_step"]
    assert KILL_AFTER <= saved < STEPS
    resumed = subprocess.run(_command(case, inputs, killed) + ["--ckpt_path", "last"], env=env,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    expected, got = _weights(straight), _weights(killed)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, rtol=0, atol=0, msg=key)
