"""Words of the synthetic domain, as the inversion methods use them.

* **Concept words** (SEARLE's regulariser): the nouns that name a thing in an image, garment
  categories and shapes. SEARLE takes them from a large dictionary and asks GPT for phrases that
  use them; here the phrases come from templates filled with attribute words of the synthetic
  vocabulary (a simplification: no language model).
* **Keywords** (LinCIR's self-masking): LinCIR replaces each maximal run of nouns, adjectives and
  determiners of a caption with the pseudo token (found with spaCy). Here a word is a keyword when
  the synthetic vocabulary uses it (colours, shapes, sizes, places, garment attributes), or it is
  a determiner or one of the captions' own nouns; the captions come from that vocabulary, so this
  finds the same runs without a parser.
* **Attribute words**: the keywords that say what an image holds (no articles or generic nouns), each
  with its kind (colour, shape, size, place, garment), to read what a pseudo-word's nearest words say.
"""

from __future__ import annotations

import re

import numpy as np

from cirlib.data.synth.vocab import (
    BACKGROUNDS,
    CATEGORY_WORDS,
    CELL_WORDS,
    COLOURS,
    GRAPHIC_WORDS,
    LENGTH_WORDS,
    NECKLINE_WORDS,
    OBJECT_COLOURS,
    PATTERN_WORDS,
    SHAPE_PLURALS,
    SHAPES,
    SIZES,
    SLEEVE_WORDS,
)

GARMENT_CONCEPTS = tuple(dict.fromkeys(w for words in CATEGORY_WORDS.values() for w in words))
SHAPE_CONCEPTS = tuple(dict.fromkeys(w for words in SHAPES.values() for w in words))
CONCEPTS = GARMENT_CONCEPTS + SHAPE_CONCEPTS

_DETERMINERS = ("a", "an", "the", "one", "two", "three", "four", "no")
_CAPTION_NOUNS = ("image", "picture", "photo", "product", "background", "print", "logo", "neckline", "neck",
                  "sleeve", "sleeves", "colour", "color", "length", "pattern", "graphic")


def _split(phrases) -> set[str]:
    return {word for phrase in phrases for word in phrase.split()}


KEYWORDS = frozenset(
    _split(p for _, words in (*COLOURS.values(), *BACKGROUNDS.values()) for p in words)
    | _split(p for table in (SHAPES, SIZES, CATEGORY_WORDS, PATTERN_WORDS, SLEEVE_WORDS, NECKLINE_WORDS, GRAPHIC_WORDS)
             for words in table.values() for p in words)
    | _split(p for table in LENGTH_WORDS.values() for words in table.values() for p in words)
    | _split(p for cell in CELL_WORDS for p in cell) | _split(SHAPE_PLURALS.values())
    | set(_DETERMINERS) | set(_CAPTION_NOUNS))
ATTRIBUTE_WORDS = KEYWORDS - set(_DETERMINERS) - set(_CAPTION_NOUNS)
"""The keywords that say what an image holds: colours, shapes, sizes, places, garment attributes."""


def _kind(kind: str, phrases) -> dict[str, str]:
    return {word: kind for word in _split(phrases)}


WORD_KINDS = {**_kind("garment", ATTRIBUTE_WORDS),
              **_kind("place", (p for cell in CELL_WORDS for p in cell)),
              **_kind("size", (p for words in SIZES.values() for p in words)),
              **_kind("shape", (*(p for words in SHAPES.values() for p in words), *SHAPE_PLURALS.values())),
              **_kind("colour", (p for _, words in (*COLOURS.values(), *BACKGROUNDS.values()) for p in words))}
"""Attribute word -> what it names: "colour" (of an object, a garment or a background), "shape", "size",
"place" (a grid cell) or "garment" (category, pattern, sleeves, length, neckline, graphic)."""

_TOKEN = re.compile(r"[\w-]+|[^\w\s]")


def _runs(caption: str, placeholder: str) -> list[tuple[bool, list[str]]]:
    """The caption's words and punctuation, lower-cased, as (is a keyword run, tokens): each maximal run of
    keywords is one entry, every other token an entry of its own."""
    runs: list[tuple[bool, list[str]]] = []
    for token in _TOKEN.findall(caption.lower().replace(placeholder, " ")):
        keyword = token in KEYWORDS
        if keyword and runs and runs[-1][0]:
            runs[-1][1].append(token)
        else:
            runs.append((keyword, [token]))
    return runs


def mask_keywords(caption: str, placeholder: str = "$") -> str:
    """``caption`` with every maximal run of keywords replaced by one ``placeholder`` (LinCIR's
    self-masking). A caption without keywords becomes "a photo of $ that <caption>" (LinCIR's fallback)."""
    out = [token for keyword, tokens in _runs(caption, placeholder) for token in ([placeholder] if keyword else tokens)]
    text = " ".join(out).replace(" ,", ",")
    return text if placeholder in out else f"a photo of {placeholder} that {caption}"


def keyword_runs(caption: str, placeholder: str = "$") -> list[str]:
    """The runs of keywords that :func:`mask_keywords` replaces, in order: "a big red square in the top left"
    gives ["a big red square", "the top left"]. All of them share one pseudo-word in LinCIR's training."""
    return [" ".join(tokens) for keyword, tokens in _runs(caption, placeholder) if keyword]


def attribute_words(caption: str) -> list[str]:
    """The :data:`ATTRIBUTE_WORDS` a caption uses, once each, in order of appearance: what the caption says
    the image holds (to compare with the words nearest to the image's pseudo-word)."""
    return list(dict.fromkeys(t for t in _TOKEN.findall(caption.lower()) if t in ATTRIBUTE_WORDS))


_GARMENT_PHRASES = ("a {colour} {concept}", "a {pattern} {concept}", "product photo of a {colour} {concept}",
                    "a {concept} with {sleeves}", "a {colour} {pattern} {concept} with a {neckline}",
                    "a {concept} with a {graphic}")
_SHAPE_PHRASES = ("a {colour} {concept}", "a {size} {concept}", "a {concept} on a {background} background",
                  "a {size} {colour} {concept} in the {cell}", "an image of a {colour} {concept}",
                  "a {concept} in the {cell}")


def concept_phrases(concept: str, count: int, seed: int = 0) -> list[str]:
    """``count`` phrases that use ``concept`` once, each a ``str.format`` template with a ``{}`` where
    the concept goes (so the concept and the placeholder can both be put in). Seeded, deterministic."""
    rng = np.random.default_rng([seed, CONCEPTS.index(concept)])

    def pick(options) -> str:
        options = tuple(options)
        return options[int(rng.integers(len(options)))]

    phrases = []
    for i in range(count):
        if concept in GARMENT_CONCEPTS:
            template = _GARMENT_PHRASES[i % len(_GARMENT_PHRASES)]
            words = {"colour": pick(pick(COLOURS.values())[1]), "pattern": pick(pick(PATTERN_WORDS.values())),
                     "sleeves": pick(("short sleeves", "long sleeves", "no sleeves")),
                     "neckline": pick(pick(NECKLINE_WORDS.values())),
                     "graphic": pick(pick(w for k, w in GRAPHIC_WORDS.items() if k != "none"))}
        else:
            template = _SHAPE_PHRASES[i % len(_SHAPE_PHRASES)]
            words = {"colour": pick(COLOURS[pick(OBJECT_COLOURS)][1]), "size": pick(pick(SIZES.values())),
                     "background": pick(pick(BACKGROUNDS.values())[1]), "cell": pick(pick(CELL_WORDS))}
        phrases.append(template.format(concept="{}", **words))
    return phrases
