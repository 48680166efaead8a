"""The knobs of ShapesWorld: image size, object counts and sizes, overlap, noise rates of alt-text, split
fractions.

Object sizes: a "small" object spans ``small_diameter`` of the image side and a "large" one ``large_diameter``
(defaults 0.26 and 0.42: 16 px and 26 px across at 64 px), so that a small star or hexagon is still about 16
px across and a tiny captioner can tell the shapes apart at the default size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from vlforge.common.errors import VLForgeError
from vlforge.common.shapes.vocabulary import COLOURS, SHAPES

SPLITS = ("pool", "seed", "pref", "critic", "val", "test")
DEFAULT_SPLIT_FRACTIONS = {"pool": 0.7, "seed": 0.1, "pref": 0.05, "critic": 0.05, "val": 0.05, "test": 0.05}
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 32, 448


@dataclass(frozen=True)
class ShapesWorldConfig:
    """Every parameter of the generator; ``to_dict`` is what a store records in its info."""

    image_size: int = 64
    min_objects: int = 1
    max_objects: int = 4
    shapes: tuple[str, ...] = SHAPES
    colours: tuple[str, ...] = COLOURS
    small_diameter: float = 0.26
    large_diameter: float = 0.42
    max_overlap: float = 0.25
    relation_margin: float = 0.08
    sign_probability: float = 0.3
    texture_probability: float = 0.3
    alt_one_object_rate: float = 0.6
    alt_wrong_colour_rate: float = 0.15
    alt_synonym_rate: float = 0.25
    alt_filler_rate: float = 0.5
    alt_mismatch_rate: float = 0.1
    split_fractions: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SPLIT_FRACTIONS))

    def __post_init__(self) -> None:
        if not MIN_IMAGE_SIZE <= self.image_size <= MAX_IMAGE_SIZE:
            raise VLForgeError(f"image_size must be in {MIN_IMAGE_SIZE}..{MAX_IMAGE_SIZE}, "
                               f"got {self.image_size}")
        if not 1 <= self.min_objects <= self.max_objects <= 4:
            raise VLForgeError("need 1 <= min_objects <= max_objects <= 4, "
                               f"got {self.min_objects}..{self.max_objects}")
        for name, words, known in (("shapes", self.shapes, SHAPES), ("colours", self.colours, COLOURS)):
            unknown = set(words) - set(known)
            if unknown or not words:
                raise VLForgeError(f"{name} must be a non-empty subset of {known}, got {tuple(words)}")
        if len(set(self.colours) - {"white", "black"}) < 1 or len(self.shapes) * len(self.colours) < 8:
            raise VLForgeError("shapes x colours must offer at least 8 distinct objects, "
                               "some neither white nor black")
        if not 0 < self.small_diameter < self.large_diameter <= 0.5:
            raise VLForgeError("need 0 < small_diameter < large_diameter <= 0.5 "
                               "(fractions of the image side)")
        rates = ("max_overlap", "relation_margin", "sign_probability", "texture_probability",
                 "alt_one_object_rate", "alt_wrong_colour_rate", "alt_synonym_rate", "alt_filler_rate",
                 "alt_mismatch_rate")
        for name in rates:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise VLForgeError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.max_overlap > 0.5:
            raise VLForgeError("max_overlap must be <= 0.5 so that object centres stay visible, "
                               f"got {self.max_overlap}")
        fractions = self.split_fractions
        if set(fractions) - set(SPLITS) or any(v < 0 for v in fractions.values()) \
                or abs(sum(fractions.values()) - 1) > 1e-6:
            raise VLForgeError(f"split_fractions must map some of {SPLITS} to non-negative numbers "
                               f"summing to 1, got {fractions}")
        object.__setattr__(self, "shapes", tuple(self.shapes))
        object.__setattr__(self, "colours", tuple(self.colours))

    def pixel_radius(self, size: str) -> int:
        """Half the extent in pixels of an object of ``size`` ("small" or "large"); every shape fits this
        circle."""
        diameter = self.small_diameter if size == "small" else self.large_diameter
        return max(3, round(diameter * self.image_size / 2))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shapes"], d["colours"] = list(self.shapes), list(self.colours)
        return d

    @classmethod
    def from_knobs(cls, **knobs: Any) -> ShapesWorldConfig:
        """Build from keyword knobs, naming an unknown knob in the error."""
        unknown = set(knobs) - set(cls.__dataclass_fields__)
        if unknown:
            raise VLForgeError(f"unknown ShapesWorld knob(s) {sorted(unknown)}; "
                               f"known: {sorted(cls.__dataclass_fields__)}")
        return cls(**knobs)
