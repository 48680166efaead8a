"""The one exception type for user mistakes: command-line tools print its message on one line, no traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

_recording: list[list[VLForgeError]] = []


class VLForgeError(Exception):
    """A user-facing error (bad input, bad config, wrong path). The message names the record, key or file."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        for raised in _recording:
            raised.append(self)


@contextmanager
def recorded_user_errors() -> Iterator[list[VLForgeError]]:
    """The VLForgeErrors created inside the block, for callers whose library folds them into another exception
    (jsonargparse turns one raised in a class's ``__init__`` into a ValueError that lists only its text)."""
    raised: list[VLForgeError] = []
    _recording.append(raised)
    try:
        yield raised
    finally:
        _recording.remove(raised)
