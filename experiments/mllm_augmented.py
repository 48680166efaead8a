"""The MLLM-augmented experiment (papers/mllms-augmented-vl-representation-learning.md) end to end, one
command:

    python experiments/mllm_augmented.py experiments/shapes/mllm_augmented.yaml [DELTA.yaml ...] \\
        [--seed S] [--only STAGE] [--dry-run]

Stages, each in runs/<name>/seed<S>/<stage>/ with its generated config files, its exact command (command.sh,
to re-run it alone, e.g. under torchrun / srun) and its log:

- ``world``: ShapesWorld into a caption store (``vlforge-store shapes``); or, with ``store.path``, an existing
  store (e.g. CC3M ingested with ``vlforge-store ingest``) and no stage;
- ``sft_<captioner>``: fine-tune each captioner that has a ``train`` block (``vlforge-captioner fit``);
- ``caption_<captioner>``: caption the pool with each captioner into the store, text shearing per captioner
  (``vlforge-captioner predict``; resumable: an interrupted stage continues where it stopped); a captioner
  with ``weights_of: <other>`` and no ``train`` block generates with the other's fine-tuned checkpoint (e.g. the
  same model with other decoding parameters);
- ``analyze``: caption analysis per source (``vlforge-captioner analyze``);
- ``clip_<run>``: train CLIP on the run's captions (``vlforge-vlm fit``, one pair per caption and the same
  optimizer steps for every run: the paper's 1/k epochs) and evaluate its checkpoint (``vlforge-vlm evaluate``:
  retrieval both directions, zero-shot, ARO, linear probe on the test split).

Afterwards runs/<name>/report.md is written from every seed present (``mllm_augmented_report``). Stages whose
outputs are complete are skipped (vlforge.common.stages); ``--only STAGE`` re-runs one stage; ``--dry-run``
writes and checks every stage's config (instantiated with run=False; parse-only for captioners loaded by hub
name) without running anything. Later YAML files are deltas merged over the first (ablations); a delta
removes a captioner or a ``report.curve`` point by setting it to null.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from vlforge.common.errors import VLForgeError
from vlforge.common.progress import is_status_line
from vlforge.common.runs import check_config, last_checkpoint
from vlforge.common.stages import Stage, StageRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mllm_augmented_report import write_report  # noqa: E402

BIN = Path(sys.executable).parent
TOP_KEYS = {
    "name",
    "seed",
    "threads",
    "runs_root",
    "world",
    "store",
    "captioners",
    "generation",
    "clip",
    "report",
}
RAW = "alt_text"
GT = "gt"  # ground-truth captions: a perfect captioner, the upper bound of an oracle run


# ---------------------------------------------------------------------------------------------- configuration
def load_experiment(paths: list[str]) -> dict[str, Any]:
    """The experiment: the first YAML with every later one merged over it (mappings merge, lists replace)."""
    merged = OmegaConf.create({})
    for path in paths:
        if not Path(path).is_file():
            raise VLForgeError(f"experiment config {path} does not exist")
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except yaml.YAMLError as err:
            raise VLForgeError(
                f"experiment config {path}: not valid YAML ({str(err).splitlines()[0]})"
            ) from None
        unknown = set(data) - TOP_KEYS
        if unknown:
            raise VLForgeError(f"experiment config {path}: unknown key {sorted(unknown)[0]!r}")
        merged = OmegaConf.merge(merged, OmegaConf.create(data))
    exp = OmegaConf.to_container(merged, resolve=True)
    for key in ("name", "captioners", "clip"):
        if key not in exp:
            raise VLForgeError(f"experiment config {paths[0]}: missing key {key!r}")
    exp["captioners"] = {name: c for name, c in exp["captioners"].items() if c is not None}
    report = exp.get("report") or {}
    if report.get("curve"):
        report["curve"] = {k: run for k, run in report["curve"].items() if run is not None}
    if ("world" in exp) == ("store" in exp):
        raise VLForgeError(
            f"experiment config {paths[0]}: give exactly one of 'world' (generate ShapesWorld) "
            "and 'store' (an existing store)"
        )
    for name, captioner in exp["captioners"].items():
        donor = captioner.get("weights_of")
        if donor is not None and (captioner.get("train") or not (exp["captioners"].get(donor) or {}).get("train")):
            raise VLForgeError(
                f"experiment config: captioner {name!r} takes the weights of {donor!r}, which must be a captioner "
                "with a train block (and it must have none of its own)"
            )
    for run, captions in exp["clip"]["runs"].items():
        for entry in captions:
            source = entry if isinstance(entry, str) else entry.get("source")
            if source not in (RAW, GT) and source not in exp["captioners"]:
                raise VLForgeError(
                    f"experiment config: clip run {run!r} uses captions of {source!r}, which is "
                    "neither alt_text, gt nor a captioner"
                )
    return exp


def deep_merge(base: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in delta.items():
        out[key] = (
            deep_merge(out[key], value)
            if isinstance(value, dict) and isinstance(out.get(key), dict)
            else value
        )
    return out


def write_yaml(path: Path, data: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def caption_choice(entry: str | dict[str, Any]) -> dict[str, Any]:
    """A clip run's caption entry (a source name or CaptionChoice fields) as CaptionChoice fields."""
    return {"source": entry} if isinstance(entry, str) else dict(entry)


def sources_of(captions: list[str | dict[str, Any]]) -> list[str]:
    return [caption_choice(c)["source"] for c in captions if caption_choice(c)["source"] not in (RAW, GT)]


# ------------------------------------------------------------------------------------------------ commands
class Console:
    """Runs console scripts with the experiment's environment; every command is also written to command.sh."""

    def __init__(self, threads: int | None) -> None:
        self.env = dict(os.environ)
        if threads:
            self.env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))

    def __call__(self, folder: Path, args: list[str], log_name: str = "log.txt") -> None:
        command = " ".join(shlex.quote(a) for a in args)
        with open(folder / "command.sh", "a") as script:
            script.write(command + "\n")
        with open(folder / log_name, "a") as log:
            log.write(f"$ {command}\n")
            log.flush()
            process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=self.env,
                                       text=True, bufsize=1)
            for line in process.stdout:
                log.write(line)
                log.flush()
                if is_status_line(line) or line.startswith("fit done:"):  # progress on the runner's console too
                    print(f"    {folder.name}: {line.strip()}", flush=True)
            code = process.wait()
        if code != 0:
            tail = (folder / log_name).read_text().strip().splitlines()[-1:] or [""]
            raise VLForgeError(
                f"stage {folder.name}: `{Path(args[0]).name} {args[1] if len(args) > 1 else ''}` "
                f"exited with {code}: {tail[0][:300]} (log: {folder / log_name})"
            )


def cli_args(console: str, subcommand: str, configs: list[str], folder: Path, run_name: str) -> list[str]:
    args = [str(BIN / f"vlforge-{console}"), subcommand]
    for config in configs:
        args += ["--config", config]
    return args + ["--run_root", str(folder), "--run_name", run_name]


def check_cli(console: str, args: list[str], instantiate: bool) -> None:
    """Parse (and with ``instantiate`` build, run=False) a console's command line in this process."""
    import torch

    args = list(args[2:])
    if not torch.cuda.is_available():
        args += ["--trainer.accelerator", "cpu", "--trainer.devices", "1"]
    check_config(console, args, instantiate=instantiate)


# ------------------------------------------------------------------------------------------------ the stages
class Experiment:
    """The stages of one seed of an experiment (see the module docstring)."""

    def __init__(self, exp: dict[str, Any], seed: int, dry_run: bool = False) -> None:
        self.exp, self.seed, self.dry_run = exp, seed, dry_run
        self.root = Path(exp.get("runs_root", "runs")) / exp["name"]
        self.run_dir = self.root / f"seed{seed}"
        self.console = Console(exp.get("threads"))
        self.store = str(self.run_dir / "world" / "store") if "world" in exp else exp["store"]["path"]

    def run_or_check(self, folder: Path, console: str, args: list[str], instantiate: bool = True) -> None:
        if self.dry_run:
            check_cli(console, args, instantiate)
        else:
            self.console(folder, args)

    def stages(self) -> list[Stage]:
        stages: list[Stage] = []
        base = ("world",) if "world" in self.exp else ()
        if "world" in self.exp:
            stages.append(Stage("world", self.world, {"world": self.exp["world"], "seed": self.seed}))
        for name, captioner in self.exp["captioners"].items():
            if captioner.get("train"):
                stages.append(
                    Stage(
                        f"sft_{name}",
                        lambda f, n=name: self.sft(f, n),
                        {"train": captioner["train"], "seed": self.captioner_seed(name)},
                        base,
                    )
                )
        caption_stages = []
        for name, captioner in self.exp["captioners"].items():
            trained = self.trained_as(name)
            after = base + ((f"sft_{trained}",) if trained else ())
            inputs = {
                "generate": captioner["generate"],
                "weights_of": trained,
                "generation": self.exp.get("generation", {}),
                "seed": self.captioner_seed(name),
            }
            stages.append(
                Stage(f"caption_{name}", lambda f, n=name: self.caption(f, n), inputs, after, resume=True)
            )
            caption_stages.append(f"caption_{name}")
        if "world" in self.exp:
            stages.append(
                Stage(
                    "analyze",
                    self.analyze,
                    {"sources": sorted(self.exp["captioners"])},
                    tuple(caption_stages),
                )
            )
        for run, captions in self.exp["clip"]["runs"].items():
            after = base + tuple(f"caption_{s}" for s in sources_of(captions))
            inputs = {
                "captions": captions,
                "clip": {k: v for k, v in self.exp["clip"].items() if k != "runs"},
                "seed": self.seed,
            }
            stages.append(Stage(f"clip_{run}", lambda f, r=run: self.clip(f, r), inputs, after))
        return stages

    def captioner_seed(self, name: str) -> int:
        """Each captioner trains and samples with its own seed: the run's seed plus its position."""
        return self.seed + list(self.exp["captioners"]).index(name)

    def world(self, folder: Path) -> None:
        world = self.exp["world"]
        args = [
            str(BIN / "vlforge-store"),
            "shapes",
            str(folder / "store"),
            "--num-images",
            str(world["num_images"]),
            "--seed",
            str(self.seed),
            "--image-size",
            str(world.get("image_size", 64)),
            "--json",
        ]
        for knob, value in (world.get("knobs") or {}).items():
            args += ["--set", f"{knob}={json.dumps(value)}"]
        if not self.dry_run:
            self.console(folder, args)

    def sft(self, folder: Path, name: str) -> None:
        train = self.exp["captioners"][name]["train"]
        delta = deep_merge(
            train.get("config") or {},
            {
                "seed_everything": self.captioner_seed(name),
                "data": {"init_args": {"store": self.store}},
            },
        )
        configs = [*train.get("configs", []), write_yaml(folder / "config.yaml", delta)]
        source = (
            (((delta.get("model") or {}).get("init_args") or {}).get("captioner") or {})
            .get("init_args", {})
            .get("source", "preset:")
        )
        self.run_or_check(
            folder,
            "captioner",
            cli_args("captioner", "fit", configs, folder, "fit"),
            instantiate=str(source).startswith("preset:"),
        )

    def trained_as(self, name: str) -> str | None:
        """The captioner whose SFT checkpoint ``name`` generates with: itself, its ``weights_of`` or none."""
        captioner = self.exp["captioners"][name]
        return name if captioner.get("train") else captioner.get("weights_of")

    def caption(self, folder: Path, name: str) -> None:
        captioner = self.exp["captioners"][name]
        generate = dict(captioner["generate"])
        shear, shear_tokens = generate.pop("shear", True), generate.pop("shear_tokens", None)
        spec = {"name": name, "seed": self.captioner_seed(name), **generate}
        trained = self.trained_as(name)
        if trained and not self.dry_run:  # a dry run checks the config before any checkpoint exists
            spec["checkpoint"] = str(last_checkpoint(self.run_dir / f"sft_{trained}" / "fit"))
        self._check_same_spec(folder, name, spec)
        generation = self.exp.get("generation") or {}
        config = {
            "seed_everything": self.captioner_seed(name),
            "model": {
                "class_path": "vlforge.captioner.generation.lit_predict.CaptionerPredictLitModule",
                "init_args": {"captioner": spec, "shear": shear, "shear_tokens": shear_tokens},
            },
            "data": {
                "class_path": "vlforge.captioner.generation.datamodule.CaptionGenerationDataModule",
                "init_args": {
                    "store": self.store,
                    "split": generation.get("split", "pool"),
                    "batch_size": generation.get("batch_size", 32),
                    "limit": generation.get("limit"),
                    "num_workers": 0,
                },
            },
            "trainer": {"enable_checkpointing": False, "logger": False},
        }
        configs = [*generation.get("configs", []), write_yaml(folder / "config.yaml", config)]
        self.run_or_check(
            folder,
            "captioner",
            cli_args("captioner", "predict", configs, folder, "predict"),
            instantiate=str(spec.get("source", "preset:")).startswith("preset:"),
        )

    def _check_same_spec(self, folder: Path, name: str, spec: dict[str, Any]) -> None:
        """A resumed caption stage must continue with the same captioner: captions already in the store would
        otherwise mix two captioners under one name."""
        if self.dry_run:  # a dry run writes no captions, so it records no spec either
            return
        record = folder / "spec.json"
        text = json.dumps(spec, sort_keys=True)
        if record.is_file() and record.read_text() != text:
            raise VLForgeError(
                f"captioner {name!r} changed since its captions were written into {self.store}; "
                f"give it a new name, or delete {self.run_dir / 'world'} to start over"
            )
        record.write_text(text)

    def analyze(self, folder: Path) -> None:
        split = (self.exp.get("generation") or {}).get("split", "pool")
        args = [
            str(BIN / "vlforge-captioner"),
            "analyze",
            "--store",
            self.store,
            "--out",
            str(folder),
            "--split",
            split,
        ]
        if not self.dry_run:
            self.console(folder, args)

    def clip(self, folder: Path, run: str) -> None:
        clip = self.exp["clip"]
        choices = [caption_choice(c) for c in clip["runs"][run]]
        data_args = deep_merge(
            clip.get("data") or {},
            {
                "store": self.store,
                "train_captions": choices,
                "sampling": "per_caption" if len(choices) > 1 else "weighted",
            },
        )
        config = deep_merge(
            clip.get("config") or {},
            {
                "seed_everything": self.seed,
                "data": {"class_path": "vlforge.vlm.data.ContrastiveDataModule", "init_args": data_args},
                "trainer": {"max_steps": clip["max_steps"]},
            },
        )
        configs = [*clip.get("configs", []), write_yaml(folder / "config.yaml", config)]
        self.run_or_check(folder, "vlm", cli_args("vlm", "fit", configs, folder, "fit"))
        checkpoint = folder / "fit" / "last.ckpt" if self.dry_run else last_checkpoint(folder / "fit")
        evaluation = deep_merge(
            {"split": "test", "eval_captions": (clip.get("data") or {}).get("eval_captions")},
            clip.get("evaluation") or {},
        )
        evaluation.update(checkpoint=str(checkpoint), stores=[self.store], output_dir=str(folder / "eval"))
        args = [str(BIN / "vlforge-vlm"), "evaluate", "--config", write_yaml(folder / "evaluate.yaml", evaluation)]
        if self.dry_run:
            from vlforge.vlm.evaluate import build_parser

            build_parser().parse_args(args[2:])
            return
        self.console(folder, args)
        from vlforge.vlm.evaluate import table_row

        results = json.loads((folder / "eval" / "metrics.json").read_text())["results"]
        (folder / "metrics.json").write_text(json.dumps({"metrics": table_row(*results.values())}, indent=1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mllm_augmented", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("configs", nargs="+", help="experiment YAML, then optional deltas merged over it")
    parser.add_argument("--seed", type=int, default=None, help="overrides the config's seed")
    parser.add_argument("--only", help="run only this stage (even if complete)")
    parser.add_argument(
        "--dry-run", action="store_true", help="write and check every stage's config; run nothing"
    )
    args = parser.parse_args(argv)
    try:
        exp = load_experiment(args.configs)
        seed = args.seed if args.seed is not None else exp.get("seed", 0)
        experiment = Experiment(exp, seed, dry_run=args.dry_run)
        runner = StageRunner(
            experiment.run_dir,
            experiment.stages(),
            log=lambda line: print(f"[{exp['name']} seed {seed}] {line}", flush=True),
        )
        if args.dry_run:
            for stage in runner.stages:
                if args.only is None or stage.name == args.only:
                    folder = runner.stage_dir(stage.name)
                    folder.mkdir(parents=True, exist_ok=True)
                    stage.run(folder)
                    print(f"[{exp['name']} seed {seed}] {stage.name}: config checked ({folder})", flush=True)
            return 0
        results = runner.run(only=args.only)
        report = write_report(experiment.root, exp)
        ran = [r for r in results if r.status == "ran"]
        wall, cpu = sum(r.seconds for r in ran), sum(r.cpu_seconds for r in ran)
        print(
            f"[{exp['name']} seed {seed}] done: {len(ran)} stage(s) ran in {wall:.0f} s (CPU {cpu:.0f} s); "
            f"report: {report}",
            flush=True,
        )
    except VLForgeError as err:
        print(f"mllm_augmented: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
