"""Run folders and their checkpoints: the one place that knows the console's layout.

    <run_root>/<run_name>/version_<n>/config.yaml            the merged config of the run (resumes beside it:
                                      config.resume<k>.yaml)
    <run_root>/<run_name>/version_<n>/checkpoints/last.ckpt  a file, or a folder for DeepSpeed ZeRO

Without a logger Lightning writes the same `config.yaml` + `checkpoints/` pair into `<run_root>/<run_name>`.
Experiments, tests and the consoles call these functions instead of globbing the layout themselves. Nothing here
imports torch or Lightning at module level.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from vlforge.common.errors import VLForgeError

CONFIG_NAME = "config.yaml"
CHECKPOINTS_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
VERSION_PREFIX = "version_"

log = logging.getLogger(__name__)


def versions(run_dir: str | os.PathLike) -> list[int]:
    """The n of every `run_dir/version_<n>` folder, ascending (numerically: version_10 after version_9)."""
    folder = Path(run_dir)
    if not folder.is_dir():
        return []
    found = []
    for child in folder.iterdir():
        number = child.name.removeprefix(VERSION_PREFIX)
        if child.name.startswith(VERSION_PREFIX) and number.isdigit() and child.is_dir():
            found.append(int(number))
    return sorted(found)


def latest_version(run_dir: str | os.PathLike) -> int | None:
    """The highest n among `run_dir/version_<n>`, or None."""
    return max(versions(run_dir), default=None)


def version_dir(run_dir: str | os.PathLike, version: int) -> Path:
    return Path(run_dir) / f"{VERSION_PREFIX}{version}"


def checkpoint_of(version_folder: str | os.PathLike) -> Path:
    """Where a run folder keeps its last checkpoint (`<folder>/checkpoints/last.ckpt`; it may not exist)."""
    return Path(version_folder) / CHECKPOINTS_DIR / LAST_CHECKPOINT


def resume_version(run_dir: str | os.PathLike) -> int:
    """The version `fit --ckpt_path last` continues: the newest one holding checkpoints/last.ckpt.

    Newer versions without a checkpoint (a start that failed before its first save) are passed over with a
    warning naming them; when no version has a checkpoint this is a one-line VLForgeError, never a silent
    start from step 0.
    """
    numbers = versions(run_dir)
    with_checkpoint = [n for n in numbers if checkpoint_of(version_dir(run_dir, n)).exists()]
    if not with_checkpoint:
        where = f"versions {', '.join(map(str, numbers))}" if numbers else "no version folder"
        raise VLForgeError(
            f"--ckpt_path last: no {CHECKPOINTS_DIR}/{LAST_CHECKPOINT} under {run_dir} ({where}); "
            "drop --ckpt_path to start a new run"
        )
    chosen = with_checkpoint[-1]
    skipped = [n for n in numbers if n > chosen]
    if skipped:
        log.warning(
            "--ckpt_path last: resuming %s; newer %s without a checkpoint left as they are",
            version_dir(run_dir, chosen),
            ", ".join(f"{VERSION_PREFIX}{n}" for n in skipped),
        )
    return chosen


def last_checkpoint(run_dir: str | os.PathLike) -> Path:
    """`checkpoints/last.ckpt` of the newest version of `run_dir` that has one (a VLForgeError when none has)."""
    return checkpoint_of(version_dir(run_dir, resume_version(run_dir)))


def find_run_config(checkpoint: str | os.PathLike) -> Path:
    """The config.yaml of the run a checkpoint belongs to, by the run folder layout only:
    `<run>/checkpoints/<name>.ckpt` (file or ZeRO folder) -> `<run>/config.yaml`. No other parent folder is
    searched (an unrelated config.yaml higher up is never picked up); otherwise pass the run config."""
    path = Path(checkpoint).absolute()
    if path.parent.name == CHECKPOINTS_DIR and (path.parent.parent / CONFIG_NAME).is_file():
        return path.parent.parent / CONFIG_NAME
    raise VLForgeError(
        f"checkpoint {checkpoint}: no {CONFIG_NAME} of its run (looked for <run>/{CONFIG_NAME} beside "
        f"<run>/{CHECKPOINTS_DIR}/ only); pass the run config (--run_config)"
    )


def check_config(console: str, args: Sequence[str], *, instantiate: bool = True) -> object:
    """Validate the config of a `vlforge-<console>` command line in this process. `args` is what follows the
    subcommand (`["--config", "a.yaml", "--trainer.max_steps", "3"]`). Parses and type-checks it and, with
    `instantiate`, builds the model, data module and trainer without running (run=False). Parse-only
    (`instantiate=False`) is for configs that load a real model by hub name. Returns the CLI object; a mistake
    raises VLForgeError (one line naming the key and the file)."""
    from vlforge.common.cli import ParseOnlyCLI, VLForgeCLI

    cls = VLForgeCLI if instantiate else ParseOnlyCLI
    return cls(console, list(args), run=False)
