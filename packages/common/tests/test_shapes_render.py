"""The ShapesWorld renderer draws each shape's own geometry: one large object per shape, its pixels against a
direct point-in-polygon / disc mask of every shape (render.py's geometry, written out here independently)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vlforge.common.shapes.render import render_scene
from vlforge.common.shapes.vocabulary import BACKGROUND_RGB, COLOUR_RGB, SHAPES

SIZE, X, Y, R = 64, 32.0, 32.0, 26.0


def _ring(n: int, start: float, radii: tuple[float, ...]) -> list[tuple[float, float]]:
    return [(X + radii[k % len(radii)] * math.cos(start + 2 * math.pi * k / n),
             Y + radii[k % len(radii)] * math.sin(start + 2 * math.pi * k / n)) for k in range(n)]


# each polygon inside the circle of radius R (y grows downwards): the vertices render.py documents
VERTICES = {
    "square": _ring(4, math.pi / 4, (R,)),
    "triangle": _ring(3, -math.pi / 2, (R,)),
    "star": _ring(10, -math.pi / 2, (R, 0.5 * R)),
    "hexagon": _ring(6, 0.0, (R,)),
    "diamond": [(X, Y - R), (X + 0.65 * R, Y), (X, Y + R), (X - 0.65 * R, Y)],
}


def _reference_mask(shape: str) -> np.ndarray:
    """Pixel centres inside the shape: a disc, or even-odd ray casting against the polygon's edges."""
    ys, xs = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    if shape == "circle":
        return (xs - X) ** 2 + (ys - Y) ** 2 < R**2
    inside = np.zeros((SIZE, SIZE), dtype=bool)
    points = VERTICES[shape]
    for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1]):
        crosses = (y0 > ys) != (y1 > ys)
        x_at = x0 + (ys - y0) * (x1 - x0) / np.where(y1 == y0, 1.0, y1 - y0)
        inside ^= crosses & (xs < x_at)
    return inside


def _rendered_mask(shape: str) -> np.ndarray:
    scene = {"image_size": SIZE, "background": {"colour": "black", "texture": "plain"}, "sign": None,
             "objects": [{"shape": shape, "colour": "red", "x": X, "y": Y, "radius": R}]}
    pixels = np.asarray(render_scene(scene))
    assert {tuple(p) for p in pixels.reshape(-1, 3)} == {COLOUR_RGB["red"], BACKGROUND_RGB["black"]}
    return (pixels == COLOUR_RGB["red"]).all(-1)


@pytest.mark.parametrize("shape", SHAPES)
def test_each_shape_is_drawn_with_its_own_geometry(shape):
    drawn = _rendered_mask(shape)
    # disagreement (pixels) with each shape's reference mask; rasterisation only moves the boundary
    disagreement = {other: int((drawn ^ _reference_mask(other)).sum()) for other in SHAPES}
    outline = 2 * math.pi * R  # pixels along the circle's outline; the others' are about as long or shorter
    assert disagreement[shape] < outline, disagreement  # about one pixel per outline pixel at most (measured 48-148)
    for other, pixels in disagreement.items():
        if other != shape:  # every other shape is told apart by many more pixels than the outline's rounding
            assert pixels > 2 * disagreement[shape] + 20, (other, disagreement)
