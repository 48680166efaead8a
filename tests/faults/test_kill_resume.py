"""SIGKILL at seeded points of ingest, merge, caption generation, critic predict and fit; then resume, verify and
compare with an uninterrupted run: nothing committed is lost, nothing is duplicated, the resumed result equals the
uninterrupted one.

Store commands are killed at chosen store writes (before one, inside its open transaction after all its puts, right
after its commit); fit is killed at seeded moments after a checkpoint was written. Several kills hit one run in turn
(each resume may be killed again) before a last resume completes it. Critic predict is killed like generation."""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import subprocess
import sys
import time

import pytest
import torch
from PIL import Image

pytestmark = pytest.mark.faults

STORE_CLI = "vlforge.common.store_cli"
KILLS_PER_RUN = 3


def _png(value: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (value % 256, (value * 7) % 256, 3)).save(buf, "PNG")
    return buf.getvalue()


def _dataset(root, n: int, offset: int = 0, name: str = "ann.jsonl"):
    (root / "imgs").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(offset, offset + n):
        (root / "imgs" / f"{i:04d}.png").write_bytes(_png(i))
        lines.append(json.dumps({"image": f"imgs/{i:04d}.png", "caption": [f"image {i}", f"picture {i}"]}))
    (root / name).write_text("\n".join(lines) + "\n")
    return root / name


def _kill_and_resume(faults, tmp_path, argv_for, reference, salt: str, module: str = STORE_CLI,
                     count: int = KILLS_PER_RUN, total: int | None = None) -> tuple[int, int]:
    """Kill the command ``count`` times in a row at seeded writes (out of ``total``, by default counted in a clean
    run), then let it finish; returns (kills, runs)."""
    if total is None:
        total = faults.writes_of(faults.run_console(module, argv_for(tmp_path / "clean-count")))
    target = tmp_path / "target"
    kills = 0
    for at, phase in faults.kill_points(total, count, salt):
        proc = faults.run_console(module, argv_for(target), kill_at=at, phase=phase)
        assert proc.returncode in (-faults.signal.SIGKILL, 0), proc.stderr[-2000:]
        kills += proc.returncode == -faults.signal.SIGKILL
        faults.check_killed_store(target, reference)
    final = faults.run_console(module, argv_for(target))
    assert final.returncode == 0, final.stderr[-2000:]
    return kills, count + 1


@pytest.mark.parametrize("round_", range(2))
def test_killed_ingest_resumes_to_the_uninterrupted_store(faults, tmp_path, round_):
    ann = _dataset(tmp_path / "data", 60)

    def argv(store):
        return ["ingest", store, "--format", "jsonl", "--annotations", ann, "--batch-size", "7"]

    assert faults.run_console(STORE_CLI, argv(tmp_path / "reference")).returncode == 0
    reference = faults.snapshot(tmp_path / "reference")
    kills, runs = _kill_and_resume(faults, tmp_path, argv, reference, f"ingest{round_}")
    assert faults.snapshot(tmp_path / "target") == reference
    faults.record("sigkill", "ingest", faults=kills, runs=runs, records=len(reference), records_lost=0,
                  records_duplicated=0)


def test_killed_merge_resumes_to_the_uninterrupted_store(faults, tmp_path):
    for name, offset in (("A", 0), ("B", 30)):
        ann = _dataset(tmp_path / name, 50, offset)
        assert faults.run_console(STORE_CLI, ["ingest", tmp_path / f"store{name}", "--format", "jsonl",
                                              "--annotations", ann, "--batch-size", "9"]).returncode == 0

    def argv(out):
        return ["merge", out, tmp_path / "storeA", tmp_path / "storeB", "--embed-images"]

    assert faults.run_console(STORE_CLI, argv(tmp_path / "reference")).returncode == 0
    reference = faults.snapshot(tmp_path / "reference")
    assert len(reference) == 80
    kills, runs = 0, 0
    for round_ in range(2):
        shutil.rmtree(tmp_path / "target", ignore_errors=True)
        k, r = _kill_and_resume(faults, tmp_path, argv, reference, f"merge{round_}")
        kills, runs = kills + k, runs + r
        assert faults.snapshot(tmp_path / "target") == reference
    faults.record("sigkill", "merge", faults=kills, runs=runs, records=len(reference), records_lost=0,
                  records_duplicated=0)


GENERATION_YAML = """\
split: pool
batch_size: 2
shear: false
captioners:
  - name: tiny_llava
    source: preset:llava_tiny
    format: short
    decoding: {max_new_tokens: 5, num_beams: 1, do_sample: false}
    seed: 0
"""


def test_killed_caption_generation_resumes_to_one_caption_per_image(faults, tmp_path):
    from vlforge.common.shapes.build import build_shapes_store

    build_shapes_store(tmp_path / "base", 16, seed=3, workers=1, split_fractions={"pool": 0.5, "seed": 0.5})
    (tmp_path / "gen.yaml").write_text(GENERATION_YAML)
    module = "vlforge.captioner.tools_cli:generate_main"  # `vlforge-captioner generate`

    def fresh(path):
        if not path.exists():
            shutil.copytree(tmp_path / "base", path)
        return path

    def argv(store):
        return ["--store", fresh(store), "--config", tmp_path / "gen.yaml"]

    assert faults.run_console(module, argv(tmp_path / "reference")).returncode == 0
    reference = faults.snapshot(tmp_path / "reference")
    kills, runs = _kill_and_resume(faults, tmp_path, argv, reference, "generate", module=module, count=2)
    assert faults.snapshot(tmp_path / "target") == reference
    pool = [v for v in reference.values() if v[0] == "pool"]
    assert all(sum(c[1] == "tiny_llava" for c in captions) == 1 for _, captions, _, _ in pool)
    faults.record("sigkill", "generate", faults=kills, runs=runs, records=len(pool), records_lost=0,
                  records_duplicated=0)


def _critiques(path) -> dict[str, list[tuple]]:
    """id -> the critic-rewrite captions of the image: (text, provenance but its time, (sentence, verdict) rows)."""
    from vlforge.common.store import CaptionStore

    with CaptionStore(path) as store:
        return {record.image_id: [(c.text, {k: v for k, v in c.provenance.items() if k != "time"},
                                   [(row["sentence"], row["verdict"]) for row in c.scores["critic_sentences"]])
                                  for c in record.captions_by(source="gt+critic")]
                for record in store.iter_records()}


def test_killed_critic_predict_resumes_to_one_critique_per_caption(faults, tmp_path):
    """`vlforge-critic predict` (critic:predict_tiny.yaml) killed at seeded writes of its shard store and of the
    merge into the store, then resumed: every image's gt caption is checked exactly once (one `gt+critic` caption
    with its provenance and per-sentence verdicts), as in an uninterrupted run, and no shard is left behind."""
    from vlforge.common.lm.shards import default_shard_root
    from vlforge.common.shapes.build import build_shapes_store

    build_shapes_store(tmp_path / "base", 8, seed=3, workers=1, split_fractions={"test": 1.0})
    module = "vlforge.critic.cli"  # `vlforge-critic predict`
    runs_root = tmp_path / "runs"

    def argv(store):
        if not store.exists():
            shutil.copytree(tmp_path / "base", store)
        return ["predict", "--config", "critic:predict_tiny.yaml", "--data.init_args.store", store,
                "--data.init_args.batch_size", "1", "--trainer.enable_progress_bar", "false", "--run_root",
                runs_root]

    clean = faults.run_console(module, argv(tmp_path / "reference"))
    reference = faults.snapshot(tmp_path / "reference")
    critiques = _critiques(tmp_path / "reference")
    assert len(critiques) == 8 and all(len(c) == 1 and c[0][2] for c in critiques.values())
    assert all(c[0][1]["original_source"] == "gt" and c[0][1]["critic"] == "preset:llava_tiny"
               for c in critiques.values())
    kills, runs = _kill_and_resume(faults, tmp_path, argv, reference, "critic-predict", module=module, count=3,
                                   total=faults.writes_of(clean))
    assert faults.snapshot(tmp_path / "target") == reference
    assert _critiques(tmp_path / "target") == critiques
    assert not default_shard_root(tmp_path / "target").exists()
    faults.record("sigkill", "critic predict", faults=kills, runs=runs, records=len(critiques), records_lost=0,
                  records_duplicated=0)


def _fit_command(toy_dir, root, steps: int, resume: bool) -> list[str]:
    code = "import sys; from vlforge.common.cli import run_cli; sys.exit(run_cli('common', sys.argv[1:]))"
    return [sys.executable, "-c", code, "fit", "--config", str(toy_dir / "toy_base.yaml"), "--run_root",
            str(root), "--trainer.max_steps", str(steps), "--model.init_args.net.init_args.dropout", "0.3",
            *(["--ckpt_path", "last"] if resume else [])]


def test_killed_fit_resumes_to_the_uninterrupted_weights(faults, tmp_path):
    env = dict(os.environ, PYTHONPATH=f"{faults.toy_dir}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    steps = 24  # 8 steps an epoch: checkpoints at 8, 16, 24
    straight = subprocess.run(_fit_command(faults.toy_dir, tmp_path / "straight", steps, False), env=env,
                              capture_output=True, text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr[-2000:]
    rng = random.Random(f"{faults.seed}-fit")
    root, kills = tmp_path / "killed", 0
    ckpt_glob = "common/version_*/checkpoints/last.ckpt"
    for _ in range(2):
        resume = any(root.glob(ckpt_glob))
        before = {p: p.stat().st_mtime_ns for p in root.glob(ckpt_glob)}
        proc = subprocess.Popen(_fit_command(faults.toy_dir, root, steps, resume), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:  # wait for a new checkpoint, then a bit more
            if any(p.stat().st_mtime_ns != before.get(p) for p in root.glob(ckpt_glob)):
                time.sleep(rng.uniform(0.0, 0.4))
                break
            time.sleep(0.01)
        proc.kill()
        kills += proc.wait() == -faults.signal.SIGKILL
    final = subprocess.run(_fit_command(faults.toy_dir, root, steps, True), env=env, capture_output=True, text=True,
                           timeout=600)
    assert final.returncode == 0, final.stderr[-2000:]
    (a,), (b,) = (tmp_path / "straight").glob(ckpt_glob), root.glob(ckpt_glob)
    ref, got = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    assert got["global_step"] == ref["global_step"] == steps and got["state_dict"].keys() == ref["state_dict"].keys()
    (metrics,) = root.glob("common/version_*/metrics_fit.json")
    assert json.loads(metrics.read_text())["global_step"] == steps  # complete, not a torn write
    exact = all(torch.equal(got["state_dict"][k], v) for k, v in ref["state_dict"].items())
    (ref_csv,), got_csv = (tmp_path / "straight").glob("common/version_*/metrics.csv"), list(root.glob(
        "common/version_*/metrics.csv"))  # a resume with nothing left to train leaves no metrics.csv at all
    csv_complete = [p.read_text() for p in got_csv] == [ref_csv.read_text()]
    faults.record("sigkill", "fit", faults=kills, runs=3, records=steps, records_lost=0, records_duplicated=0,
                  bit_exact=int(exact), metrics_csv_complete=int(csv_complete))
    assert exact, "the resumed weights are not bit-identical to the uninterrupted run's"
    assert csv_complete, "metrics.csv differs from the uninterrupted run's (rows lost, repeated or at other steps)"
