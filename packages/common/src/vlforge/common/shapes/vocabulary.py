"""The ShapesWorld vocabulary: shapes, colours, sizes, relations, backgrounds and the words captions may use
for them.

These names are a stable contract: CHAIR-style hallucination metrics are built on ``SHAPE_SYNONYMS`` (every
word a caption may use for a shape, plurals included), and the hard-query generator draws the rare words of
``RARE_SHAPE_WORDS`` / ``RARE_COLOUR_WORDS`` ("crimson disc" for "red circle"). In every synonym tuple the
canonical word comes first.
"""

from __future__ import annotations

SHAPES = ("circle", "square", "triangle", "star", "hexagon", "diamond")
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "white", "black")
SIZES = ("small", "large")
RELATIONS = ("left of", "right of", "above", "below")
INVERSE_RELATION = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}

BACKGROUNDS = ("white", "black", "grey", "beige")
BACKGROUND_TEXTURES = ("plain", "striped", "checkered")

HORIZONTAL_REGIONS = ("left", "centre", "right")
VERTICAL_REGIONS = ("top", "middle", "bottom")

SIGN_WORDS = ("Stop", "Open", "Sale", "Exit", "Cafe", "Park", "Taxi", "Hotel", "Bank", "Zoo")

COLOUR_RGB = {
    "red": (220, 30, 30), "green": (30, 170, 50), "blue": (30, 70, 220), "yellow": (245, 215, 20),
    "purple": (140, 40, 180), "orange": (250, 130, 0), "white": (250, 250, 250), "black": (15, 15, 15),
}
BACKGROUND_RGB = {"white": (250, 250, 250), "black": (15, 15, 15), "grey": (128, 128, 128),
                  "beige": (225, 205, 160)}
# Background colours that coincide with an object colour: such objects never appear on that background.
BACKGROUND_CLASHES = {"white": ("white",), "black": ("black",), "grey": (), "beige": ()}

SHAPE_SYNONYMS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "circles", "disc", "discs", "disk", "disks", "orb", "orbs"),
    "square": ("square", "squares", "box", "boxes", "block", "blocks", "quadrilateral", "quadrilaterals"),
    "triangle": ("triangle", "triangles", "wedge", "wedges", "trigon", "trigons"),
    "star": ("star", "stars", "pentagram", "pentagrams", "starburst", "starbursts"),
    "hexagon": ("hexagon", "hexagons", "hex", "hexes", "honeycomb", "honeycombs"),
    "diamond": ("diamond", "diamonds", "rhombus", "rhombuses", "lozenge", "lozenges"),
}
SHAPE_PLURALS = {shape: words[1] for shape, words in SHAPE_SYNONYMS.items()}
COLOUR_SYNONYMS: dict[str, tuple[str, ...]] = {
    "red": ("red", "crimson", "scarlet", "ruby"),
    "green": ("green", "emerald", "jade", "verdant"),
    "blue": ("blue", "azure", "cobalt", "sapphire"),
    "yellow": ("yellow", "golden", "lemon", "canary"),
    "purple": ("purple", "violet", "plum", "amethyst"),
    "orange": ("orange", "tangerine", "amber", "apricot"),
    "white": ("white", "ivory", "snowy", "alabaster"),
    "black": ("black", "ebony", "inky", "jet"),
}
SIZE_SYNONYMS = {"small": ("small", "little", "tiny"), "large": ("large", "big", "huge")}

# Rare words (singular) that a retriever trained on ground-truth captions seldom sees; used by hard queries
# and alt-text.
RARE_SHAPE_WORDS = {shape: words[2::2] for shape, words in SHAPE_SYNONYMS.items()}
RARE_COLOUR_WORDS = {colour: words[1:] for colour, words in COLOUR_SYNONYMS.items()}
