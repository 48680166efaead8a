"""The LightningCLI base every vlforge console script runs on (`vlforge-vlm fit --config a.yaml --config b.yaml`).

- subcommands fit / validate / test / predict; `--config` repeated composes files in order (omegaconf mode, so
  `${...}` interpolation works within a file); dotted overrides win; `--print_config` prints the merged config;
- `--config <package>:<path>` names a YAML shipped inside a package, e.g. `common:trainer/ddp.yaml`;
- before any `--config`, the defaults are loaded: `common:trainer/cpu.yaml`, then `<package>:defaults.yaml` if the
  package ships one;
- the run directory is `<run_root>/<run_name>/version_<n>` and holds the merged config (config.yaml), the CSV (and with
  `--tensorboard true` TensorBoard) logs, metrics_<stage>.json and checkpoints/ (last.ckpt always kept);
  `fit --ckpt_path last` continues, in place, the newest version of the run that holds checkpoints/last.ckpt
  (newer versions without one, e.g. a start that failed, are passed over with a warning; with none at all it is a
  one-line error, never a silent start from step 0), keeping the first config.yaml and writing the resumed run's
  merged config beside it as config.resume<k>.yaml (vlforge.common.runs has the layout);
- a config mistake (unknown key, wrong type, missing value, missing file) is one line on stderr, exit code 2.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from jsonargparse import ArgumentError
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, RichProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from omegaconf.errors import OmegaConfBaseException

from vlforge.common.config_errors import describe_config_error, locate_config_error
from vlforge.common.errors import VLForgeError, recorded_user_errors
from vlforge.common.extras import check_strategy_extras
from vlforge.common.fit_summary import FitSummaryCallback
from vlforge.common.grad_checkpointing import enable_gradient_checkpointing
from vlforge.common.log_progress_bar import LogProgressBar
from vlforge.common.logged_step import LoggedStepCallback
from vlforge.common.progress import is_terminal
from vlforge.common.resumed_csv_logger import ResumedCSVLogger
from vlforge.common.rng_state import RNGStateCallback
from vlforge.common.run_config import KeepFirstConfig
from vlforge.common.run_metrics import MetricsJSONCallback
from vlforge.common.runs import checkpoint_of, resume_version, version_dir
from vlforge.common.sample_outputs import SampleOutputsCallback

SUBCOMMANDS = ("fit", "validate", "test", "predict")
CONFIG_ERRORS = (ArgumentError, OmegaConfBaseException)
_PACKAGE_CONFIG = re.compile(r"^(?P<package>[a-z_]+):(?P<path>[^:]+\.ya?ml)$")


def package_config_dir(package: str) -> Path:
    """The `configs/` folder shipped inside `vlforge.<package>` (it may not exist)."""
    try:
        return Path(str(resources.files(f"vlforge.{package}"))) / "configs"
    except ModuleNotFoundError as err:
        raise VLForgeError(f"unknown vlforge package {package!r}") from err


def resolve_config(value: str) -> str:
    """`common:trainer/ddp.yaml` -> that file inside the package; any other value is returned unchanged."""
    match = _PACKAGE_CONFIG.match(value)
    if match is None or Path(value).exists():
        return value
    root = package_config_dir(match["package"]).resolve()
    path = (root / match["path"]).resolve()
    if not path.is_relative_to(root):
        raise VLForgeError(f"config {value}: path escapes the package's configs folder")
    if not path.is_file():
        raise VLForgeError(f"config {value}: no such file in vlforge.{match['package']} ({path})")
    return str(path)


def resolve_config_args(args: Sequence[str]) -> list[str]:
    """Rewrite the package-config shorthand in every `--config X` / `--config=X` of a command line."""
    resolved: list[str] = []
    after_config = False
    for arg in args:
        if after_config:
            resolved.append(resolve_config(arg))
        elif arg.startswith("--config="):
            resolved.append("--config=" + resolve_config(arg.split("=", 1)[1]))
        else:
            resolved.append(arg)
        after_config = arg == "--config"
    return resolved


def default_config_files(package: str) -> list[str]:
    """The configs loaded before any `--config`: the cpu trainer preset, then the package's defaults.yaml."""
    files = [str(package_config_dir("common") / "trainer" / "cpu.yaml")]
    package_defaults = package_config_dir(package) / "defaults.yaml"
    if package != "common" and package_defaults.is_file():
        files.append(str(package_defaults))
    return files


class VLForgeCLI(LightningCLI):
    """LightningCLI with vlforge's defaults: any LitModule / DataModule by class_path, stacked configs, run dirs,
    exact resume (RNG state callback, resumable loaders) and the gradient-checkpointing switch.

    `links` are (source, target) pairs passed to `parser.link_arguments` for derived values, e.g.
    `("data.init_args.image_size", "model.init_args.image_size")`.
    """

    def __init__(
        self,
        package: str = "common",
        args: Sequence[str] | None = None,
        *,
        run: bool = True,
        links: Sequence[tuple[str, str]] = (),
        **kwargs: Any,
    ) -> None:
        self.package = package
        self.links = tuple(links)
        per_parser = {
            "parser_mode": "omegaconf",
            "exit_on_error": False,
            "allow_abbrev": False,
            "default_config_files": default_config_files(package),
        }
        # With subcommands the defaults belong to each subcommand's parser, not to the main one.
        main_parser = (
            per_parser if not run else {"parser_mode": "omegaconf", "exit_on_error": False, "allow_abbrev": False}
        )
        parser_kwargs = {**main_parser, **{name: dict(per_parser) for name in SUBCOMMANDS}}
        super().__init__(
            model_class=LightningModule,
            datamodule_class=LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_callback=KeepFirstConfig,
            save_config_kwargs={"overwrite": True},
            parser_kwargs=parser_kwargs,
            args=args,
            run=run,
            **kwargs,
        )

    def parse_arguments(self, parser: LightningArgumentParser, args: Sequence[str] | None) -> None:
        """Parse; a config mistake becomes a one-line VLForgeError naming the key and the file."""
        resolved = resolve_config_args(sys.argv[1:] if args is None else args)
        try:
            self.config = parser.parse_args(resolved)
        except CONFIG_ERRORS as err:
            description = _describe(err)
            where = locate_config_error(parser.parse_args, resolved, description, _describe)
            raise VLForgeError(description + where) from None
        from vlforge.common.checkpoint import check_ckpt_path

        subcommand = self.config.get("subcommand")
        check_ckpt_path(self.config.get(f"{subcommand}.ckpt_path") if subcommand else None)

    def subcommands(self) -> dict[str, set[str]]:
        return {name: spec for name, spec in super().subcommands().items() if name in SUBCOMMANDS}

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--run_name",
            type=str,
            default=self.package,
            help="runs are written to <run_root>/<run_name>/version_<n>",
        )
        parser.add_argument("--run_root", type=str, default="runs", help="folder holding all run directories")
        parser.add_argument("--tensorboard", type=bool, default=False, help="also log to TensorBoard")
        parser.add_argument(
            "--gradient_checkpointing",
            type=bool,
            default=False,
            help="recompute activations in the backward pass (less memory, more compute)",
        )
        for source, target in self.links:
            parser.link_arguments(source, target)

    def before_instantiate_classes(self) -> None:
        """`fit --ckpt_path last` becomes the path of the checkpoint it continues (see the module docstring); with a
        logger or a ModelCheckpoint folder of the config's own, "last" is left to Lightning."""
        check_strategy_extras((self._get(self.config, "trainer", default=None) or {}).get("strategy"))
        self.resumed_version: int | None = None
        if self.subcommand != "fit" or self._get(self.config, "ckpt_path") != "last":
            return
        if any(_checkpoint_folder_set(c) for c in self._get(self.config, "trainer.callbacks") or []):
            return
        run_dir = Path(self._get(self.config, "run_root")) / self._get(self.config, "run_name")
        logger = self._get(self.config, "trainer.logger")
        if logger in (None, True):
            self.resumed_version = resume_version(run_dir)
            checkpoint = checkpoint_of(version_dir(run_dir, self.resumed_version))
        elif logger is False:
            checkpoint = checkpoint_of(run_dir)
            if not checkpoint.exists():
                raise VLForgeError(f"--ckpt_path last: no {checkpoint}; drop --ckpt_path to start a new run")
        else:
            return
        self.config[self.subcommand]["ckpt_path"] = str(checkpoint)

    def instantiate_classes(self) -> None:
        """As LightningCLI's; a VLForgeError raised in a model's or data module's ``__init__`` (a missing weights
        file) reaches the user as its one line instead of jsonargparse's ValueError around its text."""
        with recorded_user_errors() as raised:
            try:
                super().instantiate_classes()
            except ValueError as err:
                folded = next((e for e in raised if str(e) in str(err)), None)
                if folded is None:
                    raise
                raise folded from None

    def after_instantiate_classes(self) -> None:
        if self._get(self.config, "gradient_checkpointing"):
            enable_gradient_checkpointing(self.model)
        super().after_instantiate_classes()

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        trainer_config = self._get(self.config_init, "trainer", default={})
        callbacks = list(trainer_config.get("callbacks") or [])
        if trainer_config.get("logger") in (None, True):
            kwargs["logger"] = self._run_loggers()
        elif trainer_config.get("default_root_dir") is None:
            # without a logger Lightning writes config.yaml and checkpoints to the working
            # directory: keep them in
            # <run_root>/<run_name> instead
            kwargs["default_root_dir"] = str(
                Path(self._get(self.config, "run_root")) / self._get(self.config, "run_name")
            )
        if trainer_config.get("enable_checkpointing") is not False and not any(
            isinstance(c, ModelCheckpoint) for c in callbacks
        ):
            callbacks.append(ModelCheckpoint(save_last=True))
        if trainer_config.get("enable_progress_bar") is not False:
            # a bar in a terminal; one status line per interval in a log file (SLURM, nohup, a stage's log.txt)
            callbacks.append(RichProgressBar() if is_terminal(sys.stderr) else LogProgressBar())
        if trainer_config.get("logger") is not False and not any(isinstance(c, LearningRateMonitor) for c in callbacks):
            callbacks.append(LearningRateMonitor(logging_interval="step"))
        # LoggedStepCallback first: its on_train_batch_start corrects the step LearningRateMonitor logs at
        kwargs["callbacks"] = [LoggedStepCallback(), *callbacks, RNGStateCallback(), MetricsJSONCallback(),
                               FitSummaryCallback(), SampleOutputsCallback()]
        return super().instantiate_trainer(**kwargs)

    def _run_loggers(self) -> list[CSVLogger | TensorBoardLogger]:
        root, name = self._get(self.config, "run_root"), self._get(self.config, "run_name")
        csv = ResumedCSVLogger(save_dir=root, name=name, version=getattr(self, "resumed_version", None))
        loggers: list[CSVLogger | TensorBoardLogger] = [csv]
        if self._get(self.config, "tensorboard"):
            loggers.append(
                TensorBoardLogger(save_dir=root, name=name, version=csv.version, default_hp_metric=False)
            )
        return loggers


class ParseOnlyCLI(VLForgeCLI):
    """Parses and type-checks a whole config, instantiates nothing (configs that load a real model by hub name)."""

    def instantiate_classes(self) -> None:
        self.model = self.datamodule = self.trainer = None

    def after_instantiate_classes(self) -> None:
        pass


def _checkpoint_folder_set(callback: Any) -> bool:
    """A ModelCheckpoint callback of the config that names its own `dirpath`."""
    class_path = str(getattr(callback, "class_path", "") or "")
    init_args = getattr(callback, "init_args", None)
    dirpath = init_args.get("dirpath") if init_args is not None else None
    return class_path.endswith("ModelCheckpoint") and dirpath is not None


def _describe(err: BaseException) -> str:
    if isinstance(err, OmegaConfBaseException):
        key = getattr(err, "full_key", None)
        return f"{key}: {str(err).splitlines()[0]}" if key else str(err).splitlines()[0]
    return describe_config_error(str(err))


def run_cli(package: str, args: Sequence[str] | None = None, **cli_kwargs: Any) -> int:
    """Run the LightningCLI subcommands of `vlforge-<package>`; returns the exit code (2 with a one-line message on a
    user mistake, through vlforge.common.console.run_tool)."""
    from vlforge.common.console import run_tool
    from vlforge.common.distributed import release_process_group

    def run() -> None:
        try:
            VLForgeCLI(package, args, **cli_kwargs)
        finally:
            release_process_group()

    return run_tool(f"vlforge-{package}", run)


def main() -> None:
    """`python -m vlforge.common.cli`: the framework's own console (any class_path, no package defaults)."""
    from vlforge.common.console import console

    sys.exit(console("common"))


if __name__ == "__main__":
    main()
