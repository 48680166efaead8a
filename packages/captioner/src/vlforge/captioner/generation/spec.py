"""What one captioner of a generation run is (one YAML entry) and a generation run's settings.

A generation YAML (``configs/generation/*.yaml``)::

    split: pool            # the store split to caption
    batch_size: 8
    shear: true            # text shearing to shear_tokens words (MLLM-augmented paper, section 3.4)
    shear_tokens: null     # null: round(mean alt_text words of the store)
    sentence_splitter: auto  # regex | pysbd | auto (regex for a ShapesWorld store, else pysbd)
    captioners:
      - name: llava_dense                  # the captions' source in the store
        source: preset:llava_tiny          # preset:<name> | hub name | local directory
        checkpoint: runs/x/checkpoints/last.ckpt   # optional: Lightning checkpoint of a captioner LitModule
        format: dense                      # shipped format or YAML path: the instruction and the store kind
        prompt: null                       # optional instruction replacing the format's
        decoding: {max_new_tokens: 30, num_beams: 1, do_sample: true, temperature: 0.2}   # model.generate
        kwargs
        seed: 0                            # sampling seed (per batch: seed + crc32 of its first image id)
        samples: 1                         # captions drawn per image (> 1 needs do_sample; provenance "sample": k)
        preset_seed: null                  # a preset's random-init seed instead of the preset's own

Unknown keys are one-line errors naming the key and the file.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vlforge.captioner.formats import CaptionFormat, load_format
from vlforge.common.errors import VLForgeError
from vlforge.common.lm.loading import DTYPES, load_generative, weights_from
from vlforge.common.sentences import resolve_splitter


def check_field_types(obj: Any, what: str) -> None:
    """A one-line VLForgeError naming the first field whose value does not have its annotated type (str, int,
    bool, dict, each optionally ``| None``). A bool is not an int here and an int is not a bool, so
    ``trust_remote_code: "no"`` or ``seed: true`` is an error, not a silently truthy value."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        annotation = str(f.type).replace(" ", "")
        if value is None and annotation.endswith("|None"):
            continue
        expected = {"str": str, "int": int, "bool": bool, "dict": dict}.get(annotation.split("|")[0].split("[")[0])
        if expected is None:
            continue
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise VLForgeError(f"{what}: {f.name} must be {annotation.replace('|', ' or ')}, got "
                               f"{type(value).__name__} {value!r}"[:200])


@dataclass
class CaptionerSpec:
    """One captioner of a generation run (see the module docstring for the fields)."""

    name: str
    source: str = "preset:llava_tiny"
    checkpoint: str | None = None
    format: str = "dense"
    prompt: str | None = None
    decoding: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    preset_seed: int | None = None
    dtype: str = "float32"
    trust_remote_code: bool = False
    samples: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise VLForgeError(f"captioner spec: name must be a non-empty string, got {self.name!r}")
        check_field_types(self, f"captioner {self.name!r}")
        if self.name in ("alt_text", "gt"):
            raise VLForgeError(f"captioner {self.name!r}: 'alt_text' and 'gt' are reserved caption sources")
        if self.dtype not in DTYPES:
            raise VLForgeError(
                f"captioner {self.name!r}: dtype {self.dtype!r} is not one of {', '.join(DTYPES)}"
            )
        if not isinstance(self.decoding, dict):
            raise VLForgeError(f"captioner {self.name!r}: decoding must be a mapping of generate() arguments")
        if self.samples < 1:
            raise VLForgeError(f"captioner {self.name!r}: samples must be >= 1, got {self.samples}")
        if self.samples > 1 and not self.decoding.get("do_sample"):
            raise VLForgeError(f"captioner {self.name!r}: {self.samples} samples per image need sampling "
                               "(decoding.do_sample: true)")

    def caption_format(self) -> CaptionFormat:
        fmt = load_format(self.format)
        if self.prompt is not None:
            fmt = dataclasses.replace(fmt, instruction=self.prompt)
        return fmt

    def provenance(self) -> dict[str, Any]:
        """The model part of a generated caption's provenance."""
        return {
            "model": self.source,
            "checkpoint": self.checkpoint,
            "format": self.format,
            "decoding": dict(self.decoding),
            "seed": self.seed,
            "preset_seed": self.preset_seed,
        }


@dataclass
class GenerationConfig:
    """A generation run: captioners over one split of a store."""

    captioners: list[CaptionerSpec]
    split: str = "pool"
    batch_size: int = 8
    shear: bool = True
    shear_tokens: int | None = None
    sentence_splitter: str = "auto"
    limit: int | None = None

    def __post_init__(self) -> None:
        if not self.captioners:
            raise VLForgeError("a generation config needs at least one captioner")
        check_field_types(self, "generation config")
        names = [c.name for c in self.captioners]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise VLForgeError(f"captioner names must be unique; repeated: {', '.join(duplicates)}")
        if self.batch_size < 1:
            raise VLForgeError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.shear_tokens is not None and self.shear_tokens < 1:
            raise VLForgeError(f"shear_tokens must be >= 1, got {self.shear_tokens}")
        resolve_splitter(self.sentence_splitter)
        if self.limit is not None and self.limit < 1:
            raise VLForgeError(f"limit must be >= 1, got {self.limit}")


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def load_generation_config(path: str | os.PathLike) -> GenerationConfig:
    """Read a generation YAML (a path, or ``captioner:generation/<file>.yaml`` for a shipped one)."""
    from vlforge.common.cli import resolve_config

    path = Path(resolve_config(os.fspath(path)))
    if not path.is_file():
        raise VLForgeError(f"generation config {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise VLForgeError(f"generation config {path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise VLForgeError(f"generation config {path}: expected a mapping with a 'captioners' list")
    unknown = set(data) - _fields(GenerationConfig)
    if unknown:
        raise VLForgeError(f"generation config {path}: unknown key {sorted(unknown)[0]!r}")
    entries = data.get("captioners")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise VLForgeError(f"generation config {path}: 'captioners' must be a list of mappings")
    specs = []
    for position, entry in enumerate(entries):
        unknown = set(entry) - _fields(CaptionerSpec)
        if unknown:
            raise VLForgeError(
                f"generation config {path}: captioners[{position}] has unknown key {sorted(unknown)[0]!r}"
            )
        if "name" not in entry:
            raise VLForgeError(f"generation config {path}: captioners[{position}] has no 'name'")
        try:
            specs.append(CaptionerSpec(**entry))
        except VLForgeError as err:
            raise VLForgeError(f"generation config {path}: {err}") from None
    try:
        return GenerationConfig(**{**data, "captioners": specs})
    except (VLForgeError, TypeError) as err:
        raise VLForgeError(f"generation config {path}: {err}") from None


@dataclass
class LoadedCaptioner:
    """A captioner ready to generate: model (eval, no gradients), processor, and where it came from."""

    model: Any
    processor: Any
    name: str


def build_captioner(spec: CaptionerSpec) -> LoadedCaptioner:
    """The spec's model and processor (:func:`vlforge.common.lm.loading.load_generative`: a preset, optionally
    re-seeded, a hub name or a local directory), with the weights of a Lightning ``checkpoint`` of a captioner
    LitModule (its ``model.*`` entries) loaded on top. No freezing policy applies: nothing trains here."""
    try:
        model, processor = load_generative(spec.source, "image_text_to_text", spec.dtype, spec.trust_remote_code,
                                           preset_seed=spec.preset_seed)
    except VLForgeError as err:
        raise VLForgeError(f"captioner {spec.name!r}: {err}") from None
    if getattr(processor, "tokenizer", None) is None:
        raise VLForgeError(f"captioner {spec.name!r}: the processor of {spec.source!r} has no tokenizer")
    captioner = LoadedCaptioner(model, processor, spec.source)
    if spec.checkpoint is not None:
        try:
            weights_from(spec.checkpoint, model)
        except VLForgeError as err:
            raise VLForgeError(f"captioner {spec.name!r}: does not fit {spec.source!r}: {err}") from None
    model.requires_grad_(False)
    model.eval()
    return captioner
