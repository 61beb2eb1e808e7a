"""Words for garments: absolute captions (pretraining, gallery captions) and relative captions.

Relative captions are written the way FashionIQ annotators write them: lower case, no final
period, a verb phrase about the target ("is red and has shorter sleeves"). A comparative
("shorter sleeves") is used only where it names a single value, so every caption pins its target.
"""

from __future__ import annotations

import numpy as np

from cirlib.data.synth.garments import Garment
from cirlib.data.synth.vocab import (
    CATEGORY_WORDS,
    COLOURS,
    GARMENT_ATTRIBUTES,
    GARMENT_VALUES,
    GRAPHIC_WORDS,
    LENGTH_WORDS,
    NECKLINE_WORDS,
    PATTERN_WORDS,
    SLEEVE_WORDS,
)


def pick(rng: np.random.Generator, options) -> str:
    """One of ``options``, chosen by ``rng`` (all caption randomness goes through here)."""
    options = tuple(options)
    return options[int(rng.integers(len(options)))]


def _colour_word(colour: str, rng: np.random.Generator) -> str:
    return pick(rng, COLOURS[colour][1])


def _ordinal_step(attr: str, old: str, new: str) -> int:
    values = GARMENT_VALUES[attr]
    return values.index(new) - values.index(old)


def _is_unique_step(attr: str, old: str) -> bool:
    """A comparative names one value only from the middle value of a three-value scale."""
    return old == GARMENT_VALUES[attr][1]


def relative_phrase(category: str, attr: str, old: str, new: str, rng: np.random.Generator) -> str:
    """One phrase saying that attribute ``attr`` changed from ``old`` to ``new``."""
    if attr == "colour":
        new_word, old_word = _colour_word(new, rng), _colour_word(old, rng)
        return pick(rng, (f"is {new_word}", f"is {new_word} in colour", f"is a {new_word} one",
                          f"is {new_word} instead of {old_word}", f"has a {new_word} colour"))
    if attr == "pattern":
        old_word = PATTERN_WORDS[old][0]
        if new == "solid":
            return pick(rng, ("is solid", "is plain", "has no pattern", f"is solid instead of {old_word}"))
        noun = {"striped": "stripes", "dotted": "polka dots", "checked": "checks"}[new]
        return pick(rng, (f"is {pick(rng, PATTERN_WORDS[new])}", f"has {noun}", f"is {PATTERN_WORDS[new][0]} instead of {old_word}"))
    if attr == "sleeves":
        options = {"sleeveless": ["is sleeveless", "has no sleeves"],
                   "short": ["has short sleeves", "is short sleeved"],
                   "long": ["has long sleeves", "is long sleeved"]}[new]
        if _is_unique_step(attr, old):
            options.append("has shorter sleeves" if _ordinal_step(attr, old, new) < 0 else "has longer sleeves")
        return pick(rng, options)
    if attr == "length":
        words = LENGTH_WORDS[category][new]
        noun = pick(rng, CATEGORY_WORDS[category][:1] + ("one",))
        options = [f"is {pick(rng, words)}", f"is a {pick(rng, words)} {noun}"]
        if _is_unique_step(attr, old):
            options.append("is shorter" if _ordinal_step(attr, old, new) < 0 else "is longer")
        return pick(rng, options)
    if attr == "neckline":
        word = pick(rng, NECKLINE_WORDS[new])
        return pick(rng, (f"has a {word}", f"has a {word} instead of a {NECKLINE_WORDS[old][0]}"))
    if attr == "graphic":
        if new == "none":
            return pick(rng, ("has no print", "has no graphic", "has nothing on the front",
                              f"has no {GRAPHIC_WORDS[old][0]}"))
        word = pick(rng, GRAPHIC_WORDS[new])
        return pick(rng, (f"has a {word} on the front", f"has a {word}", f"has a {word} on the chest"))
    raise ValueError(f"unknown garment attribute {attr!r}")


def changed_attributes(reference: Garment, target: Garment) -> list[str]:
    return [name for name in GARMENT_ATTRIBUTES if getattr(reference, name) != getattr(target, name)]


def relative_captions(reference: Garment, target: Garment, rng: np.random.Generator) -> tuple[str, str]:
    """Two annotator-style captions whose union describes every changed attribute.

    Half the time both captions describe every change; otherwise the changes are split between
    them (each non-empty), as two FashionIQ annotators often each mention part of the difference.
    """
    changes = changed_attributes(reference, target)
    if not changes:
        raise ValueError("reference and target are identical; nothing to describe")
    if len(changes) == 1 or rng.random() < 0.5:
        parts = (changes, changes)
    else:
        order = list(rng.permutation(changes))
        cut = int(rng.integers(1, len(order)))
        first, second = order[:cut], order[cut:]
        # The second annotator sometimes repeats one change the first one mentioned.
        if rng.random() < 0.5:
            second = second + [first[0]]
        parts = (first, second)

    def caption(attrs: list[str]) -> str:
        attrs = list(rng.permutation(attrs))
        phrases = [relative_phrase(reference.category, a, getattr(reference, a), getattr(target, a), rng) for a in attrs]
        return pick(rng, (" and ", ", ")).join(phrases) if len(phrases) == 2 else _join(phrases, rng)

    return caption(parts[0]), caption(parts[1])


def _join(phrases: list[str], rng: np.random.Generator) -> str:
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + pick(rng, (" and ", ", ")) + phrases[-1]


def _noun_phrase(g: Garment, attrs: list[str], rng: np.random.Generator) -> str:
    """'a red striped long sleeved dress with a v-neck and a star print' over the chosen attributes."""
    pre: list[str] = []
    post: list[str] = []
    for attr in attrs:
        value = getattr(g, attr)
        if attr == "colour":
            pre.insert(0, _colour_word(value, rng))
        elif attr == "pattern":
            pre.append(pick(rng, PATTERN_WORDS[value]))
        elif attr == "sleeves":
            pre.append(pick(rng, SLEEVE_WORDS[value]))
        elif attr == "length":
            pre.append(pick(rng, LENGTH_WORDS[g.category][value]))
        elif attr == "neckline":
            post.append(f"a {pick(rng, NECKLINE_WORDS[value])}")
        elif attr == "graphic":
            post.append(pick(rng, ("no print", "no graphic")) if value == "none" else f"a {pick(rng, GRAPHIC_WORDS[value])}")
    head = " ".join(pre + [pick(rng, CATEGORY_WORDS[g.category])])
    article = "an" if head[0] in "aeiou" else "a"
    return f"{article} {head}" + (f" with {_join(post, rng)}" if post else "")


def garment_caption(g: Garment, rng: np.random.Generator, quality: str = "full") -> str:
    """An absolute caption: ``full`` names every attribute, ``partial`` two to four of them,
    ``noisy`` all but one, with one attribute (possibly) replaced by a wrong value."""
    attrs = list(GARMENT_ATTRIBUTES)
    if quality == "partial":
        attrs = sorted(rng.choice(attrs, size=int(rng.integers(2, 5)), replace=False), key=attrs.index)
    elif quality == "noisy":
        attrs.remove(pick(rng, attrs))
        if rng.random() < 0.5:
            wrong = pick(rng, attrs)
            g = g.replace(**{wrong: pick(rng, [v for v in GARMENT_VALUES[wrong] if v != getattr(g, wrong)])})
    elif quality != "full":
        raise ValueError(f"unknown caption quality {quality!r}; use full, partial or noisy")
    return pick(rng, ("", "a photo of ", "product photo of ")) + _noun_phrase(g, attrs, rng)
