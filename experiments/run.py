"""A plan runner: sequences `vlforge-<package>` console calls, nothing else.

    python experiments/run.py run PLAN.yaml [--seeds 0,1,2] [--only STEP | --steps A,B] [--var NAME=VALUE] [--dry-run]
    python experiments/run.py table PLAN.yaml [--json docs/results/NAME.json]

A plan (experiments/<area>/plans/*.yaml) names its runs and lists its steps; each step is one console call with
stacked shipped configs and the YAML deltas committed beside the plan:

    name: vlm_outcome1            # runs/<name>/seed<S>/<step>/ (shared steps: runs/<name>/shared/<step>/)
    seeds: [0, 1, 2]
    threads: 1                    # OMP_NUM_THREADS / MKL_NUM_THREADS of every call
    variables: {experiment: runs/mllm_augmented/seed0}   # {experiment} in strings; --var experiment=... sets it
    steps:
      - name: world
        shared: true              # once for every seed
        call: [store, shapes, "{dir}/store", --num-images, 3000, --seed, 0]
      - name: alt_text
        call: [vlm, fit]          # console, then a LightningCLI subcommand or one of the console's tools
        configs: [vlm:model/clip_tiny.yaml, vlm:data/shapes_alt_text.yaml, experiments/vlm/outcomes/common.yaml]
        set: {seed_everything: "{seed}", data.init_args.store: "{world}/store"}
      - name: alt_text_lr2e-3
        seeds: [0]                # a variant run for these seeds only (e.g. one not chosen on val)
        call: [vlm, fit]
        configs: [vlm:model/clip_tiny.yaml, vlm:data/shapes_alt_text.yaml, experiments/vlm/outcomes/common.yaml]
        set: {seed_everything: "{seed}", data.init_args.store: "{world}/store", model.init_args.lr: 0.002}
        check: parse              # --dry-run parses this call without building it (e.g. a hub model)
      - name: alt_text_eval
        call: [vlm, evaluate, --config, experiments/vlm/outcomes/eval_short.yaml, --checkpoint,
               "{alt_text:checkpoint}", --stores, "[{world}/store]", --output_dir, "{dir}/eval"]
        result: eval/metrics.json # the JSON the table reads
    tables:
      - title: alt-text vs alt-text + gt short
        columns: {alt_text: alt_text_eval, alt_text + gt_short: gt_eval}   # column -> step
        difference: true          # last column minus first, per seed
        rows: {t2i R@1: results.store.retrieval.t2i_r1}                     # row -> key path in the JSON
                                  # ("+SUFFIX:key.path" reads step "<column step>SUFFIX" instead)

Relative config paths are read from the repository root; run folders go under the working directory. In strings,
``{seed}`` is the seed, ``{dir}`` the step's folder, ``{VARIABLE}`` the value of one of the plan's ``variables``
(e.g. another experiment's run folder that the plan reads), ``{NAME}`` the folder of step NAME and
``{NAME:checkpoint}`` the last checkpoint of NAME's run (vlforge.common.runs.last_checkpoint), ``{NAME:checkpoints}``
the folder holding it. ``configs`` become ``--config`` (``<pkg>:`` names the package's shipped configs), ``set``
becomes ``--key value``; a LightningCLI subcommand runs with ``--run_root <step folder> --run_name fit``, so the
merged config is saved with the run. ``after: [STEP, ...]`` names steps that a step reads without naming them in its
strings (e.g. captions another step wrote into a shared store): like the steps it names, they run before it, re-run
it when they re-run, and ``--steps`` must select them too.

Steps are stages of vlforge.common.stages: a finished step (its inputs — the command line and the content of every
config file it names — unchanged) is skipped, an interrupted one runs again, ``--only`` re-runs one, ``--steps``
runs a subset (e.g. one recipe of a plan that also holds the variants it was chosen against). ``--dry-run``
checks every step of every seed without running anything: LightningCLI calls are parsed and instantiated with
run=False (parse-only when they name another step's output or a variable, which may not exist yet), tool calls are
parsed by the tool's own parser where it has one (``build_<tool>_parser`` or ``build_parser`` beside the tool's
function), and every ``--config`` file must exist and be YAML.
``table`` tabulates the results of every seed folder present: mean ± sample std over seeds per column, and the
per-seed difference with its smallest value.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import re
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from vlforge.common.cli import resolve_config
from vlforge.common.errors import VLForgeError
from vlforge.common.runs import last_checkpoint
from vlforge.common.stages import DONE_MARKER, Stage, StageRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mllm_augmented import BIN, Console, check_cli  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PLAN_KEYS = {"name", "description", "seeds", "threads", "runs_root", "variables", "steps", "tables"}
STEP_KEYS = {"name", "call", "configs", "set", "args", "shared", "seeds", "result", "check", "after"}
TABLE_KEYS = {"title", "columns", "rows", "difference"}
LIGHTNING = ("fit", "validate", "test", "predict")
FIT_RUN = "fit"
PLACEHOLDER = re.compile(r"\{([A-Za-z_][\w-]*)(:checkpoints?)?\}")


# ---------------------------------------------------------------------------------------------------- the plan
def load_plan(path: str | Path, runs_root: str | None = None, variables: dict[str, str] | None = None
              ) -> dict[str, Any]:
    """The plan at ``path`` (``runs_root`` and ``variables`` overriding its own), its keys checked (a mistake is one
    line naming the plan and the key)."""
    path = Path(path)
    if not path.is_file():
        raise VLForgeError(f"plan {path} does not exist")
    try:
        plan = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise VLForgeError(f"plan {path}: not valid YAML ({str(err).splitlines()[0]})") from None
    unknown = set(plan) - PLAN_KEYS
    if unknown:
        raise VLForgeError(f"plan {path}: unknown key {sorted(unknown)[0]!r}")
    for key in ("name", "steps"):
        if key not in plan:
            raise VLForgeError(f"plan {path}: missing key {key!r}")
    plan_variables = {str(k): str(v) for k, v in (plan.get("variables") or {}).items()}
    for name in variables or {}:
        if name not in plan_variables:
            raise VLForgeError(f"plan {path}: --var {name}: not one of its variables "
                               f"({', '.join(plan_variables) or 'it has none'})")
    plan["variables"] = {**plan_variables, **(variables or {})}
    names: list[str] = []
    for step in plan["steps"]:
        unknown = set(step) - STEP_KEYS
        if unknown or "name" not in step or not step.get("call"):
            problem = f"unknown key {sorted(unknown)[0]!r}" if unknown else "needs 'name' and 'call'"
            raise VLForgeError(f"plan {path}: step {step.get('name', len(names))!r}: {problem}")
        for ref, _ in PLACEHOLDER.findall(json.dumps(step)):
            if ref not in ("seed", "dir", *plan["variables"]) and ref not in names:
                raise VLForgeError(f"plan {path}: step {step['name']!r} names {{{ref}}}, not an earlier step")
        for ref in step.get("after") or []:
            if ref not in names:
                raise VLForgeError(f"plan {path}: step {step['name']!r}: after {ref!r} is not an earlier step")
        if step["name"] in plan["variables"]:
            raise VLForgeError(f"plan {path}: step {step['name']!r} has the name of a variable")
        names.append(step["name"])
    for table in plan.get("tables") or []:
        unknown = set(table) - TABLE_KEYS
        missing = [s for s in (table.get("columns") or {}).values() if s not in names]
        if unknown or missing or not table.get("rows"):
            problem = (f"unknown key {sorted(unknown)[0]!r}" if unknown else
                       f"column step {missing[0]!r} is not a step" if missing else "needs 'rows'")
            raise VLForgeError(f"plan {path}: table {table.get('title')!r}: {problem}")
    plan.setdefault("seeds", [0])
    plan["path"] = str(path)
    if runs_root is not None:
        plan["runs_root"] = runs_root
    return plan


def plan_root(plan: dict[str, Any]) -> Path:
    return Path(plan.get("runs_root", "runs")) / plan["name"]


def seed_folder(plan: dict[str, Any], seed: int) -> Path:
    return plan_root(plan) / f"seed{seed}"


def shared_folder(plan: dict[str, Any]) -> Path:
    return plan_root(plan) / "shared"


def config_path(path: str) -> str:
    """A config named in a plan: ``<pkg>:...`` as it is, a relative path from the repository root."""
    if ":" in path or PLACEHOLDER.search(path) or Path(path).is_absolute():
        return path
    return str(REPO / path)


def file_digest(path: str) -> str:
    """sha256 of a config file named in a step (so that editing a delta re-runs the steps that use it), without its
    ``# vlforge-...`` annotation lines (``vlforge-stack`` / ``vlforge-check`` tell the config test how to check a
    fragment; they do not change a run)."""
    resolved = Path(resolve_config(config_path(path)))
    if not resolved.is_file():
        raise VLForgeError(f"config {path} does not exist")
    lines = resolved.read_bytes().splitlines(keepends=True)
    return hashlib.sha256(b"".join(line for line in lines if not line.startswith(b"# vlforge-"))).hexdigest()[:16]


# ------------------------------------------------------------------------------------------------- one step
class Step:
    """One console call of a plan for one seed (or shared by all seeds)."""

    def __init__(self, spec: dict[str, Any], plan: dict[str, Any], seed: int | None,
                 folders: dict[str, Path], dry_run: bool) -> None:
        self.spec, self.plan, self.seed, self.folders, self.dry_run = spec, plan, seed, folders, dry_run
        self.name = spec["name"]
        self.console, self.command = str(spec["call"][0]), str(spec["call"][1]) if len(spec["call"]) > 1 else ""
        self.names_output = False  # set by substitute: the call names another step's output

    def substitute(self, value: Any, folder: Path) -> str:
        def replace(match: re.Match) -> str:
            ref, checkpoint = match.group(1), match.group(2)
            if ref == "seed":
                if self.seed is None:
                    raise VLForgeError(f"plan {self.plan['path']}: shared step {self.name!r} cannot use {{seed}}")
                return str(self.seed)
            if ref == "dir":
                return str(folder)
            self.names_output = True  # another step's output, or a variable's folder: may not exist yet
            if ref in self.plan["variables"]:
                return self.plan["variables"][ref]
            if not checkpoint:
                return str(self.folders[ref])
            run = self.folders[ref] / FIT_RUN
            last = run / "version_0" / "checkpoints" / "last.ckpt" if self.dry_run else last_checkpoint(run)
            return str(last if checkpoint == ":checkpoint" else last.parent)

        return PLACEHOLDER.sub(replace, str(value))

    def args(self, folder: Path) -> list[str]:
        """The full command line of the call (console script first)."""
        spec = self.spec
        call = [self.substitute(a, folder) for a in spec["call"][1:]]
        call = [config_path(a) if prev == "--config" else a for a, prev in zip(call, [None, *call])]
        args = [str(BIN / f"vlforge-{self.console}"), *call]
        for config in spec.get("configs") or []:
            args += ["--config", config_path(self.substitute(config, folder))]
        for key, value in (spec.get("set") or {}).items():
            text = value if isinstance(value, str) else json.dumps(value)
            args += [f"--{key}", self.substitute(text, folder)]
        args += [self.substitute(a, folder) for a in spec.get("args") or []]
        if self.command in LIGHTNING:
            args += ["--run_root", str(folder), "--run_name", FIT_RUN]
        return args

    def inputs(self, upstream_tokens: dict[str, Any]) -> dict[str, Any]:
        """What determines the step's output: its spec, the seed, the content of every config file it names
        (placeholders unresolved: upstream steps of the same seed count through the stage runner's ``after``) and
        the completion tokens of the shared steps."""
        spec = self.spec
        named = [*(spec.get("configs") or []),
                 *[a for a, prev in zip(spec["call"][1:], spec["call"]) if prev == "--config"]]
        configs = {c: file_digest(c) for c in map(str, named) if not PLACEHOLDER.search(c)}
        inputs = {"spec": {k: v for k, v in spec.items() if k != "seeds"}, "seed": self.seed, "configs": configs,
                  "shared": upstream_tokens}
        used = sorted({ref for ref, _ in PLACEHOLDER.findall(json.dumps(spec)) if ref in self.plan["variables"]})
        if used:  # only where a step reads one, so that the inputs of steps without variables stay as they were
            inputs["variables"] = {name: self.plan["variables"][name] for name in used}
        return inputs

    def run(self, folder: Path, console: Console) -> None:
        args = self.args(folder)
        if self.dry_run:
            self.check(args)
        else:
            console(folder, args)

    def check(self, args: list[str]) -> None:
        """Parse (and instantiate, run=False) the call without running it."""
        rest = args[2:]
        for config in [a for a, prev in zip(rest, [None, *rest]) if prev == "--config"]:
            path = Path(resolve_config(config))
            if not path.is_file():
                raise VLForgeError(f"step {self.name!r}: config {config} does not exist")
            try:
                yaml.safe_load(path.read_text())
            except yaml.YAMLError as err:
                reason = str(err).splitlines()[0]
                raise VLForgeError(f"step {self.name!r}: {config} is not valid YAML ({reason})") from None
        if self.command in LIGHTNING:
            instantiate = self.spec.get("check", "instantiate") == "instantiate" and not self.names_output
            check_cli(self.console, args, instantiate)
            return
        parser = tool_parser(self.console, self.command)
        if parser is not None:
            parser.parse_args(args[1:] if self.console == "store" else rest)


def tool_parser(console: str, command: str) -> Any | None:
    """The argument parser of a console tool, where its module has one (None otherwise); a tool the
    console does not have is an error."""
    if console == "store":
        return importlib.import_module("vlforge.common.store_cli").build_parser()
    try:
        tools = importlib.import_module(f"vlforge.{console}.cli").TOOLS
    except ModuleNotFoundError:
        raise VLForgeError(f"no console vlforge-{console}") from None
    if command not in tools:
        raise VLForgeError(f"vlforge-{console} has no command {command!r} (tools: {', '.join(tools)})")
    module_name, _, function = tools[command].entry.partition(":")
    module = importlib.import_module(module_name)
    build = getattr(module, f"build_{function.removesuffix('_main')}_parser", getattr(module, "build_parser", None))
    return build() if build is not None else None


# ------------------------------------------------------------------------------------------------ running
def reads(spec: dict[str, Any]) -> list[str]:
    """The steps a step reads: those its strings name (placeholders) and those in its ``after``."""
    named = [ref for ref, _ in PLACEHOLDER.findall(json.dumps(spec))]
    return list(dict.fromkeys(named + list(spec.get("after") or [])))


def stage_runner(plan: dict[str, Any], seed: int | None, steps: list[Step], console: Console,
                 log: Callable[[str], None], upstream: dict[str, Any]) -> StageRunner:
    root = shared_folder(plan) if seed is None else seed_folder(plan, seed)
    names = {s.name for s in steps}
    stages = []
    for step in steps:
        after = tuple(ref for ref in reads(step.spec) if ref in names)
        stages.append(Stage(step.name, lambda folder, s=step: s.run(folder, console), step.inputs(upstream), after))
    return StageRunner(root, stages, log=log)


def run_plan(plan: dict[str, Any], seeds: list[int], only: str | None = None, dry_run: bool = False,
             selected: list[str] | None = None) -> int:
    """Run (or check) the plan's shared steps once and its other steps per seed; returns how many steps ran.
    ``only``: that step alone (of the shared steps, or of every seed), even if complete; ``selected``: the shared
    steps and only these of the others (each with the per-seed steps it reads)."""
    console = Console(plan.get("threads"))
    shared_specs = [s for s in plan["steps"] if s.get("shared")]
    seeded_specs = [s for s in plan["steps"] if not s.get("shared")]
    names = [s["name"] for s in plan["steps"]]
    for name in [only] if only is not None else selected or []:
        if name not in names:
            raise VLForgeError(f"plan {plan['path']}: unknown step {name!r}; steps: {', '.join(names)}")
    if selected is not None:
        seeded_names = {s["name"] for s in seeded_specs}
        seeded_specs = [s for s in seeded_specs if s["name"] in selected]
        for spec in seeded_specs:
            needed = [r for r in reads(spec) if r in seeded_names and r not in selected]
            if needed:
                raise VLForgeError(f"plan {plan['path']}: step {spec['name']!r} reads step {needed[0]!r}; "
                                   "select it too")
    folders = {s["name"]: shared_folder(plan) / s["name"] for s in shared_specs}

    def log_for(tag: str) -> Callable[[str], None]:
        return lambda line: print(f"[{plan['name']} {tag}] {line}", flush=True)

    shared_steps = [Step(s, plan, None, folders, dry_run) for s in shared_specs]
    runner = stage_runner(plan, None, shared_steps, console, log_for("shared"), {})
    ran = execute(runner, only, dry_run, log_for("shared")) if only is None or only in folders else 0
    if only in folders:
        return ran
    upstream = {name: (runner.marker(name) or {}).get("token") for name in folders}
    for seed in seeds:
        specs = [s for s in seeded_specs if seed in s.get("seeds", [seed])]
        seed_folders = {**folders, **{s["name"]: seed_folder(plan, seed) / s["name"] for s in specs}}
        steps = [Step(s, plan, seed, seed_folders, dry_run) for s in specs]
        runner = stage_runner(plan, seed, steps, console, log_for(f"seed {seed}"), upstream)
        ran += execute(runner, only, dry_run, log_for(f"seed {seed}"))
    return ran


def execute(runner: StageRunner, only: str | None, dry_run: bool, log: Callable[[str], None]) -> int:
    """Run a runner's incomplete stages (or ``only``); a dry run checks each call in a scratch folder instead."""
    if dry_run:
        for stage in runner.stages:
            if only is None or stage.name == only:
                folder = runner.root / ".dry-run" / stage.name
                folder.mkdir(parents=True, exist_ok=True)
                stage.run(folder)
                log(f"{stage.name}: call checked")
        return sum(only is None or s.name == only for s in runner.stages)
    if only is not None and only not in {s.name for s in runner.stages}:
        return 0
    return sum(r.status == "ran" for r in runner.run(only=only))


# -------------------------------------------------------------------------------------------------- tables
def lookup(data: Any, key_path: str, where: Path) -> float:
    for key in key_path.split("."):
        if not isinstance(data, dict) or key not in data:
            raise VLForgeError(f"{where}: no key {key_path!r} (missing {key!r})")
        data = data[key]
    if not isinstance(data, (int, float)):
        raise VLForgeError(f"{where}: {key_path!r} is not a number")
    return float(data)


def mean_spread(values: list[float]) -> str:
    """Mean ± sample std (one value alone when there is one seed)."""
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def row_source(step: str, key_path: str) -> tuple[str, str]:
    """The step and key path of a table cell: ``KEY.PATH`` reads the column's step, ``+SUFFIX:KEY.PATH`` the step
    named ``<column step>SUFFIX`` (e.g. a second evaluation of the same run)."""
    if key_path.startswith("+"):
        suffix, _, key_path = key_path[1:].partition(":")
        return step + suffix, key_path
    return step, key_path


def collect(plan: dict[str, Any], table: dict[str, Any]) -> dict[str, dict[str, dict[int, float]]]:
    """column -> row -> seed -> value, from every seed folder whose steps for the table are all complete."""
    results = {s["name"]: s.get("result") for s in plan["steps"]}
    values: dict[str, dict[str, dict[int, float]]] = {c: {r: {} for r in table["rows"]} for c in table["columns"]}
    cells = {(c, r): row_source(step, key) for c, step in table["columns"].items() for r, key in table["rows"].items()}
    for step, _ in cells.values():
        if not results.get(step):
            raise VLForgeError(f"plan {plan['path']}: table {table['title']!r} reads step {step!r}, which is not a "
                               "step with a 'result'")
    root = plan_root(plan)
    seed_dirs = sorted((p for p in root.glob("seed*") if p.name[4:].isdigit()), key=lambda p: int(p.name[4:]))
    for seed_dir in seed_dirs:
        if not all((seed_dir / step / DONE_MARKER).is_file() for step, _ in cells.values()):
            continue
        for (column, row), (step, key_path) in cells.items():
            path = seed_dir / step / results[step]
            values[column][row][int(seed_dir.name[4:])] = lookup(json.loads(path.read_text()), key_path, path)
    return values


def markdown(table: dict[str, Any], values: dict[str, dict[str, dict[int, float]]]) -> str:
    columns = list(table["columns"])
    seeds = sorted(next(iter(values[columns[0]].values())))
    head = f"### {table['title']} ({len(seeds)} seed{'s' if len(seeds) != 1 else ''}: {seeds})"
    header = ["metric", *columns] + (["difference (per seed)"] if table.get("difference") else [])
    lines = [head, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    if not seeds:
        return head + "\n\nno seed has every column complete"
    for row in table["rows"]:
        cells = [mean_spread([values[c][row][s] for s in seeds]) for c in columns]
        if table.get("difference"):
            diffs = [values[columns[-1]][row][s] - values[columns[0]][row][s] for s in seeds]
            cells.append(f"{mean_spread(diffs)} (min {min(diffs):+.1f})")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def tabulate(plan: dict[str, Any], json_out: str | None = None) -> str:
    tables = plan.get("tables") or []
    if not tables:
        raise VLForgeError(f"plan {plan['path']} has no 'tables'")
    text, dump = [], {"plan": plan["path"], "tables": []}
    for table in tables:
        values = collect(plan, table)
        text.append(markdown(table, values))
        dump["tables"].append({"title": table["title"], "columns": table["columns"], "rows": table["rows"],
                               "values": values})
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(dump, indent=1) + "\n")
    return "\n\n".join(text)


def variable_of(text: str) -> tuple[str, str]:
    """``NAME=VALUE`` of ``--var``."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise VLForgeError(f"--var {text!r}: expected NAME=VALUE")
    return name, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    run = sub.add_parser("run", help="run (or --dry-run check) a plan's steps")
    run.add_argument("plans", nargs="+")
    run.add_argument("--seeds", help="comma-separated seeds (default: the plan's)")
    run.add_argument("--only", help="run only this step (even if complete)")
    run.add_argument("--steps", help="comma-separated: run only these of the per-seed steps (and the shared ones)")
    run.add_argument("--dry-run", action="store_true", help="check every step's call; run nothing")
    run.add_argument("--runs-root", help="overrides the plan's runs_root (default runs)")
    run.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                     help="set one of the plan's variables (repeatable)")
    table = sub.add_parser("table", help="tabulate a plan's results over its seeds")
    table.add_argument("plan")
    table.add_argument("--json", help="also write the tabulated values here")
    table.add_argument("--runs-root", help="overrides the plan's runs_root (default runs)")
    args = parser.parse_args(argv)
    try:
        variables = dict(variable_of(text) for text in getattr(args, "var", []))
        if args.mode == "table":
            print(tabulate(load_plan(args.plan, args.runs_root), args.json))
            return 0
        total = 0
        for path in args.plans:
            plan = load_plan(path, args.runs_root, variables)
            seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else list(plan["seeds"])
            selected = args.steps.split(",") if args.steps else None
            total += run_plan(plan, seeds, args.only, args.dry_run, selected)
        print(f"run.py: {total} step(s) {'checked' if args.dry_run else 'ran'}", flush=True)
    except VLForgeError as err:
        print(f"run.py: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
