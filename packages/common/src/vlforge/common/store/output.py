"""Opening an export's output file: written atomically (a temporary file renamed over ``out`` when the export
ends without an error, so a killed export leaves the old file or the new one), one-line error naming the file."""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from typing import IO

from vlforge.common.atomic_file import atomic_output


def open_text_out(out: str | os.PathLike) -> AbstractContextManager[IO[str]]:
    """``with open_text_out(out) as f:`` -- a text file (UTF-8, newlines as written) that replaces ``out`` at the
    end of the block."""
    return atomic_output(out, newline="")
