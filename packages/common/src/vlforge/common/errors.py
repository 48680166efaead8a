"""The one exception type for user mistakes: command-line tools print its message on one line, no traceback."""


class VLForgeError(Exception):
    """A user-facing error (bad input, bad config, wrong path). The message names the record, key or file."""
