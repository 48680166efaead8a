"""Caption formats (caption-format paper, section 3) as YAML prompt templates: the format is part of the
instruction, so one captioner serves every format and a training set can mix them.

Shipped: ``short`` (SSC), ``descriptive`` (DSC, within ``token_budget`` tokens), ``dense`` (DSC+) and
``alt_fusion`` (AFC: the image's alt-text goes into the prompt). A template may use ``{token_budget}`` and, for
alt_fusion only (and always there), ``{alt_text}``.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from vlforge.common.errors import VLForgeError
from vlforge.common.records import CAPTION_KINDS

FIELDS = ("name", "kind", "instruction", "token_budget")
PLACEHOLDERS = {"token_budget", "alt_text"}


@dataclass(frozen=True)
class CaptionFormat:
    """One caption format: the store ``kind`` its captions get and the instruction template (the decoding length
    is a generation setting: ``decoding.max_new_tokens``)."""

    name: str
    kind: str
    instruction: str
    token_budget: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in CAPTION_KINDS:
            raise VLForgeError(f"caption format {self.name!r}: kind {self.kind!r} is not one of {CAPTION_KINDS}")
        used = {f for _, f, _, _ in string.Formatter().parse(self.instruction) if f is not None}
        if used - PLACEHOLDERS:
            raise VLForgeError(f"caption format {self.name!r}: unknown placeholders {sorted(used - PLACEHOLDERS)}")
        if ("alt_text" in used) != (self.kind == "alt_fusion"):
            raise VLForgeError(f"caption format {self.name!r}: {{alt_text}} belongs in alt_fusion formats only, "
                               "and every alt_fusion format needs it")
        if "token_budget" in used and self.token_budget is None:
            raise VLForgeError(f"caption format {self.name!r} uses {{token_budget}} but sets none")

    @property
    def needs_alt_text(self) -> bool:
        return self.kind == "alt_fusion"

    def prompt(self, alt_text: str | None = None) -> str:
        """The instruction for one image (``alt_text`` required for alt_fusion, refused otherwise)."""
        if self.needs_alt_text and not (alt_text and alt_text.strip()):
            raise VLForgeError(f"caption format {self.name!r} needs the image's alt-text")
        if not self.needs_alt_text and alt_text is not None:
            raise VLForgeError(f"caption format {self.name!r} takes no alt-text")
        return self.instruction.format(token_budget=self.token_budget, alt_text=(alt_text or "").strip())


def format_names() -> list[str]:
    """Names of the shipped formats."""
    folder = resources.files("vlforge.captioner").joinpath("configs", "formats")
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_format(name_or_path: str) -> CaptionFormat:
    """A shipped format by name, or a YAML file by path."""
    if name_or_path in format_names():
        text = resources.files("vlforge.captioner").joinpath("configs", "formats", f"{name_or_path}.yaml").read_text()
        origin = name_or_path
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise VLForgeError(f"caption format {name_or_path!r} is neither shipped ({', '.join(format_names())}) "
                               "nor a YAML file")
        text, origin = path.read_text(), str(path)
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise VLForgeError(f"caption format {origin}: expected a mapping")
    unknown = set(data) - set(FIELDS)
    if unknown:
        raise VLForgeError(f"caption format {origin}: unknown keys {sorted(unknown)}")
    try:
        return CaptionFormat(**data)
    except TypeError as err:
        raise VLForgeError(f"caption format {origin}: {err}") from err
