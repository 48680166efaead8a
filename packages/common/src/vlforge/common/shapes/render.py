"""Drawing a scene graph with PIL, and encoding it as PNG bytes.

Shapes are drawn without anti-aliasing, each inside the circle of its ``radius`` around its centre, so an
object's centre pixel has exactly its colour's RGB (``COLOUR_RGB``). Textured backgrounds alternate the
background colour with a shade of it (stripes or a checkerboard); the sign is a light rectangle with a dark
border and a dark word.
"""

from __future__ import annotations

import io
import math
from functools import lru_cache
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from vlforge.common.shapes.vocabulary import BACKGROUND_RGB, COLOUR_RGB

SIGN_FILL, SIGN_INK = (238, 238, 230), (20, 20, 20)
PNG_COMPRESS_LEVEL = 6


def shade(rgb: tuple[int, int, int], amount: int = 30) -> tuple[int, int, int]:
    """A lighter shade of a dark colour, a darker shade of a light one."""
    step = amount if sum(rgb) < 3 * 128 else -amount
    return tuple(min(255, max(0, c + step)) for c in rgb)


def shape_polygon(shape: str, x: float, y: float, r: float) -> list[tuple[float, float]]:
    """Vertices of a polygonal shape centred at (x, y) inside the circle of radius r (y grows downwards)."""
    def ring(n: int, start: float, radii: tuple[float, ...]) -> list[tuple[float, float]]:
        return [(x + radii[k % len(radii)] * math.cos(start + 2 * math.pi * k / n),
                 y + radii[k % len(radii)] * math.sin(start + 2 * math.pi * k / n)) for k in range(n)]

    if shape == "square":
        return ring(4, math.pi / 4, (r,))
    if shape == "triangle":
        return ring(3, -math.pi / 2, (r,))
    if shape == "star":
        return ring(10, -math.pi / 2, (r, 0.5 * r))
    if shape == "hexagon":
        return ring(6, 0.0, (r,))
    if shape == "diamond":
        return [(x, y - r), (x + 0.65 * r, y), (x, y + r), (x - 0.65 * r, y)]
    raise ValueError(f"no polygon for shape {shape!r}")


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _draw_background(draw: ImageDraw.ImageDraw, background: dict[str, Any], size: int) -> None:
    base = BACKGROUND_RGB[background["colour"]]
    draw.rectangle([0, 0, size - 1, size - 1], fill=base)
    period = max(4, size // 8)
    if background["texture"] == "striped":
        for top in range(0, size, 2 * period):
            draw.rectangle([0, top, size - 1, top + period - 1], fill=shade(base))
    elif background["texture"] == "checkered":
        for top in range(0, size, period):
            for left in range((top // period) % 2 * period, size, 2 * period):
                draw.rectangle([left, top, left + period - 1, top + period - 1], fill=shade(base))


def _draw_sign(draw: ImageDraw.ImageDraw, sign: dict[str, Any]) -> None:
    x0, y0, x1, y1 = sign["box"]
    draw.rectangle([x0, y0, x1, y1], fill=SIGN_FILL, outline=SIGN_INK)
    font = _font(max(6, y1 - y0 - 2))
    left, top, right, bottom = draw.textbbox((0, 0), sign["word"], font=font)
    draw.text(((x0 + x1 + 1 - (right - left)) / 2 - left, (y0 + y1 + 1 - (bottom - top)) / 2 - top),
              sign["word"], fill=SIGN_INK, font=font)


def render_scene(scene: dict[str, Any]) -> Image.Image:
    """The RGB image of a scene graph."""
    size = scene["image_size"]
    image = Image.new("RGB", (size, size))
    draw = ImageDraw.Draw(image)
    _draw_background(draw, scene["background"], size)
    if scene["sign"] is not None:
        _draw_sign(draw, scene["sign"])
    for obj in scene["objects"]:
        fill = COLOUR_RGB[obj["colour"]]
        x, y, r = obj["x"], obj["y"], obj["radius"]
        if obj["shape"] == "circle":
            draw.ellipse([x - r, y - r, x + r, y + r], fill=fill)
        else:
            draw.polygon(shape_polygon(obj["shape"], x, y, r), fill=fill)
    return image


def encode_png(image: Image.Image) -> bytes:
    """PNG bytes of an image; the same pixels give the same bytes (fixed compression level, no metadata)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()
