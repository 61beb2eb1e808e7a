"""Attribute vocabularies shared by the garment and scene renderers and their caption writers.

Every attribute value has a render colour or geometry elsewhere and a list of words here; the
first word is the canonical name used in metadata, the rest are synonyms captions may use.
"""

from __future__ import annotations

# Colour name -> (RGB, words). Shared by garments and scene objects.
COLOURS: dict[str, tuple[tuple[int, int, int], tuple[str, ...]]] = {
    "red": ((205, 30, 40), ("red", "crimson", "scarlet")),
    "orange": ((242, 128, 24), ("orange", "tangerine")),
    "yellow": ((245, 212, 40), ("yellow", "lemon", "mustard")),
    "green": ((40, 150, 60), ("green", "emerald")),
    "blue": ((35, 75, 205), ("blue", "cobalt", "royal blue")),
    "purple": ((128, 45, 165), ("purple", "violet", "plum")),
    "pink": ((245, 140, 185), ("pink", "rose")),
    "brown": ((118, 72, 36), ("brown", "chocolate")),
    "black": ((28, 28, 30), ("black", "jet black")),
    "white": ((246, 246, 244), ("white", "ivory", "cream")),
}

LIGHT_COLOURS = frozenset({"yellow", "pink", "white", "orange"})

# --- garments (synth-fashioniq) -------------------------------------------------------------
GARMENT_CATEGORIES = ("dress", "shirt", "toptee")

# Attribute order defines the attribute vector of a garment.
GARMENT_ATTRIBUTES = ("colour", "pattern", "sleeves", "length", "neckline", "graphic")

GARMENT_VALUES: dict[str, tuple[str, ...]] = {
    "colour": tuple(COLOURS),
    "pattern": ("solid", "striped", "dotted", "checked"),
    "sleeves": ("sleeveless", "short", "long"),
    "length": ("short", "regular", "long"),
    "neckline": ("round", "v-neck", "collar"),
    "graphic": ("none", "star", "heart", "circle"),
}

# Length words depend on the category: a short dress is a mini dress, a short top is cropped.
LENGTH_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "dress": {"short": ("mini", "short"), "regular": ("knee length", "midi"), "long": ("maxi", "floor length")},
    "shirt": {"short": ("cropped",), "regular": ("regular length", "hip length"), "long": ("long", "tunic length")},
    "toptee": {"short": ("cropped",), "regular": ("regular length", "hip length"), "long": ("long", "tunic length")},
}

PATTERN_WORDS: dict[str, tuple[str, ...]] = {
    "solid": ("solid", "plain", "solid coloured"),
    "striped": ("striped", "stripy"),
    "dotted": ("polka dot", "dotted", "spotted"),
    "checked": ("checked", "plaid", "checkered"),
}

SLEEVE_WORDS: dict[str, tuple[str, ...]] = {
    "sleeveless": ("sleeveless",),
    "short": ("short sleeved", "short sleeve"),
    "long": ("long sleeved", "long sleeve"),
}

NECKLINE_WORDS: dict[str, tuple[str, ...]] = {
    "round": ("round neck", "crew neck", "round neckline"),
    "v-neck": ("v-neck", "v neckline"),
    "collar": ("collar", "collared neckline"),
}

GRAPHIC_WORDS: dict[str, tuple[str, ...]] = {
    "none": ("no print", "no graphic"),
    "star": ("star", "star print"),
    "heart": ("heart", "heart print"),
    "circle": ("circle logo", "round logo"),
}

CATEGORY_WORDS: dict[str, tuple[str, ...]] = {
    "dress": ("dress", "gown"),
    "shirt": ("shirt", "button-up shirt", "blouse"),
    "toptee": ("top", "tee", "t-shirt"),
}

# --- scenes (synth-cirr, synth-circo) -------------------------------------------------------
SHAPES: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "disc", "round shape"),
    "square": ("square", "box"),
    "triangle": ("triangle",),
    "star": ("star",),
    "diamond": ("diamond", "rhombus"),
}
SHAPE_PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles", "star": "stars",
                 "diamond": "diamonds", "disc": "discs", "round shape": "round shapes", "box": "boxes",
                 "rhombus": "rhombuses"}

OBJECT_COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "white", "black")

SIZES: dict[str, tuple[str, ...]] = {"small": ("small", "little", "tiny"), "large": ("large", "big")}

# Background name -> (RGB, words).
BACKGROUNDS: dict[str, tuple[tuple[int, int, int], tuple[str, ...]]] = {
    "grey": ((150, 150, 150), ("grey", "gray")),
    "sand": ((222, 200, 150), ("sand", "beige")),
    "sky": ((150, 195, 235), ("sky blue", "light blue")),
    "grass": ((125, 185, 105), ("grass", "light green")),
    "night": ((30, 35, 70), ("night", "dark blue", "dark")),
    "rose": ((235, 180, 190), ("rose", "light pink")),
}

# The 3x3 grid: cell index = row * 3 + col.
CELL_WORDS: tuple[tuple[str, ...], ...] = (
    ("top left", "upper left"),
    ("top", "top middle", "top centre"),
    ("top right", "upper right"),
    ("left", "middle left"),
    ("centre", "middle", "center"),
    ("right", "middle right"),
    ("bottom left", "lower left"),
    ("bottom", "bottom middle", "bottom centre"),
    ("bottom right", "lower right"),
)
ROW_WORDS = (("top row", "top"), ("middle row",), ("bottom row", "bottom"))
COUNT_WORDS = ("no", "one", "two", "three", "four")
