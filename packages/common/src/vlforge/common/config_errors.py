"""Turns jsonargparse / omegaconf config errors into one line naming the key and the file that caused them."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

_TOKEN = re.compile(
    r"Parser key \"(?P<key>[^\"]+)\""
    r"|(?P<class_path>Problem with given class_path)"
    r"|Option '(?P<unknown>[^']+)' is not accepted"
    r"|does not accept option '(?P<sub_unknown>[^']+)'"
    r"|Unrecognized arguments: --(?P<arg_unknown>[^\s=]+)"
    r"|Option '(?P<missing>[^']+)' is required but not provided"
    r"|Key \"(?P<required>[^\"]+)\" is required but not included"
    r"|Expected a <class '(?P<type>[^']+)'>\. Got value: (?P<value>[^\n]*)"
)


def describe_config_error(message: str) -> str:
    """`key.path: problem` from a (multi-line, nested) jsonargparse message; its first line when unrecognised."""
    path: list[str] = []
    problem = None
    for match in _TOKEN.finditer(message):
        if match["key"]:
            if match["key"] != "config":
                path.append(match["key"])
        elif match["class_path"]:
            path.append("init_args")
        elif match["unknown"] or match["sub_unknown"] or match["arg_unknown"]:
            path.append(match["unknown"] or match["sub_unknown"] or match["arg_unknown"])
            problem = "unknown key"
        elif match["missing"] or match["required"]:
            path.append(match["missing"] or match["required"])
            problem = "missing value"
        elif match["type"] and match["type"] != "NoneType":
            problem = f"expected {match['type']}, got {match['value'].strip()!r}"
    if problem is None:
        lines = [line.strip() for line in message.splitlines() if line.strip()]
        return " ".join(lines[:3])
    while path and path[-1] == "init_args":
        path.pop()
    return f"{'.'.join(path)}: {problem}"


def split_config_args(args: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """(leading subcommand, --config files in order, everything else) of a command line."""
    head = [args[0]] if args and not args[0].startswith("-") else []
    files: list[str] = []
    rest: list[str] = []
    items = list(args[len(head) :])
    i = 0
    while i < len(items):
        if items[i] == "--config" and i + 1 < len(items):
            files.append(items[i + 1])
            i += 2
            continue
        if items[i].startswith("--config="):
            files.append(items[i].split("=", 1)[1])
        else:
            rest.append(items[i])
        i += 1
    return head, files, rest


def locate_config_error(
    parse: Callable[[list[str]], object],
    args: Sequence[str],
    description: str,
    describe: Callable[[BaseException], str],
) -> str:
    """Where an error comes from: re-parse the config stack one file at a time and return ' (in FILE)' for the first
    prefix that fails with the same description, ' (on the command line)' if only the overrides do, else ''."""
    head, files, rest = split_config_args(args)
    for count in range(len(files) + 1):
        try:
            parse([*head, *[a for f in files[:count] for a in ("--config", f)]])
        except Exception as err:  # noqa: BLE001 - any parse failure is a candidate location
            if describe(err) == description:
                return f" (in {files[count - 1]})" if count else " (in the default configs)"
    return " (on the command line)" if rest else ""
