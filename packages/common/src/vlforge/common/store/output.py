"""Opening an export's output file: parent folders made, one-line error naming the file."""

from __future__ import annotations

import os
from typing import IO

from vlforge.common.errors import VLForgeError


def open_text_out(out: str | os.PathLike) -> IO[str]:
    try:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        return open(out, "w", encoding="utf-8", newline="")
    except OSError as err:
        raise VLForgeError(f"cannot write {os.fspath(out)!r}: {err.strerror or err}") from None
