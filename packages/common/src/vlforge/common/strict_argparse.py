"""An ArgumentParser that never matches an option by abbreviation (``--embed`` is not ``--embed-images``): a
typo or a shortened option is an error, never silently another option. Subparsers made by ``add_subparsers``
inherit the class, so every subcommand is strict too."""

from __future__ import annotations

import argparse
from typing import Any


class StrictArgumentParser(argparse.ArgumentParser):
    def __init__(self, *args: Any, allow_abbrev: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, allow_abbrev=allow_abbrev, **kwargs)
