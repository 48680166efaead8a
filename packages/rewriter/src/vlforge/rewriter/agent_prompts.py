"""The LM agent's prompts as YAML templates with named fields (shipped: ``paper``, in ``configs/agent_prompts``),
and the rewrite parsed from a model's output.

A prompt file has ``name``, ``answer_tag`` and the templates ``images`` (an MLLM that sees the right and the wrong
images), ``descriptions`` (a text-only LM that reads their descriptions) and ``blur`` (a high-quality query made
vaguer). Each template may use only its own fields (``FIELDS``) and must use the required ones (``REQUIRED``);
either mistake, an unknown key or a missing template is one line naming the file, the template and the field.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from vlforge.common.errors import VLForgeError

FIELDS = {
    "images": ("query", "num_wrong", "num_panels", "turn", "max_words"),
    "descriptions": ("query", "right_description", "wrong_descriptions", "num_wrong", "turn", "max_words"),
    "blur": ("query", "max_words"),
}
REQUIRED = {"images": ("query",), "descriptions": ("query", "right_description", "wrong_descriptions"),
            "blur": ("query",)}
KEYS = ("name", "answer_tag", *FIELDS)
QUOTES = "\"'`*“”‘’ "


def _fields_of(template: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}


@dataclass(frozen=True)
class AgentPrompts:
    """The templates of one prompt file (see the module docstring); ``origin`` names it in errors."""

    name: str
    answer_tag: str
    images: str
    descriptions: str
    blur: str
    origin: str = "<prompts>"

    def __post_init__(self) -> None:
        for template, allowed in FIELDS.items():
            used = _fields_of(getattr(self, template))
            unknown = sorted(used - set(allowed))
            if unknown:
                raise VLForgeError(f"agent prompts {self.origin}: template {template!r} uses the unknown field "
                                   f"{{{unknown[0]}}} (its fields: {', '.join(allowed)})")
            missing = [f for f in REQUIRED[template] if f not in used]
            if missing:
                raise VLForgeError(f"agent prompts {self.origin}: template {template!r} lacks the field "
                                   f"{{{missing[0]}}}")

    def fill(self, template: str, **values: Any) -> str:
        """``template`` with its fields filled; a field without a value is one line naming it."""
        missing = sorted(_fields_of(getattr(self, template)) - set(values))
        if missing:
            raise VLForgeError(f"agent prompts {self.origin}: template {template!r} needs a value for "
                               f"{{{missing[0]}}}")
        return getattr(self, template).format(**values)


def shipped_prompts() -> list[str]:
    folder = resources.files("vlforge.rewriter").joinpath("configs", "agent_prompts")
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_prompts(name_or_path: str) -> AgentPrompts:
    """Shipped prompts by name, or a YAML file by path."""
    if name_or_path in shipped_prompts():
        text = resources.files("vlforge.rewriter").joinpath("configs", "agent_prompts",
                                                            f"{name_or_path}.yaml").read_text()
    elif Path(name_or_path).is_file():
        text = Path(name_or_path).read_text()
    else:
        raise VLForgeError(f"agent prompts {name_or_path!r} are neither shipped ({', '.join(shipped_prompts())}) "
                           "nor a YAML file")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise VLForgeError(f"agent prompts {name_or_path}: not YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise VLForgeError(f"agent prompts {name_or_path}: expected a mapping")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise VLForgeError(f"agent prompts {name_or_path}: unknown key {unknown[0]!r} (keys: {', '.join(KEYS)})")
    absent = [k for k in KEYS if not isinstance(data.get(k), str) or not data[k].strip()]
    if absent:
        raise VLForgeError(f"agent prompts {name_or_path}: {absent[0]!r} is missing or not a non-empty string")
    return AgentPrompts(**data, origin=name_or_path)


def parse_rewrite(output: str, answer_tag: str) -> str | None:
    """The rewrite in a model's output: the text after the last ``answer_tag`` (case-insensitive; on the next
    non-empty line when the tag ends its line), else the last non-empty line; surrounding quotes and markup
    stripped. None when nothing is left."""
    tagged = list(re.finditer(re.escape(answer_tag), output, flags=re.IGNORECASE))
    rest = output[tagged[-1].end():] if tagged else output
    lines = [line.strip(QUOTES) for line in rest.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return None
    text = " ".join((lines[0] if tagged else lines[-1]).split())
    return text or None
