"""What each synthetic query asks for: its edit types, and the cause of difficulty each stands for.

The synthetic benchmark records every query's edits (``synth_meta/queries.*.json``): FashionIQ-style
queries change 1-3 garment attributes (colour, pattern, sleeves, ...), CIRR-style ones apply 1-2
scene edits (add, remove, move, count, recolour, ...), and a CIRR-style caption may be vague (it
leaves an attribute open, so other images fit it too: ``also_correct``). Lists follow the order of
the evaluation features (FashionIQ: categories concatenated in order).

Causes group edit types by what a model must get right:

| cause | edit types |
|---|---|
| fine-grained attribute | garment sleeves, length, neckline, graphic; one object's colour, shape or size |
| global attribute | garment colour or pattern; the scene's background |
| spatial relation | move an object (to a cell or a row) |
| count | change how many of an object there are |
| negation | remove an object, or a caption with "no", "not", "without" ("has no sleeves") |
| addition | add an object |
| caption noise | a vague caption that other gallery images also satisfy |
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from cirlib.data import CIRR, FashionIQ
from cirlib.metrics.protocols import protocol

EditTypes = list[list[str]]

CAUSE_OF_EDIT = {
    "sleeves": "fine-grained attribute", "length": "fine-grained attribute", "neckline": "fine-grained attribute",
    "graphic": "fine-grained attribute", "recolour": "fine-grained attribute", "reshape": "fine-grained attribute",
    "resize": "fine-grained attribute", "colour": "global attribute", "pattern": "global attribute",
    "background": "global attribute", "move": "spatial relation", "count": "count", "remove": "negation",
    "add": "addition",
}
"""Each edit type's cause (FashionIQ attributes and CIRR scene edits)."""
CAUSES = ("fine-grained attribute", "global attribute", "spatial relation", "count", "negation", "addition",
          "caption noise")
NEGATION = re.compile(r"\b(no|not|without|none)\b")
"""Words that make a caption a negation ("has no print", "is not striped")."""


def _meta(path: Path) -> list[dict]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: edit types exist only for the synthetic benchmark "
                                "(built by `cirlib synth`)")
    return json.loads(path.read_text())


def fashioniq_edit_types(root: Path | str, categories: Sequence[str] = FashionIQ.CATEGORIES,
                         split: str = "val") -> EditTypes:
    """Changed attributes per query, categories concatenated in order (as the evaluation features)."""
    root, reader, types = Path(root), FashionIQ(root), []
    for category in categories:
        meta = _meta(root / "synth_meta" / f"queries.{category}.{split}.json")
        triplets = reader.triplets(category, split)
        if [(m["candidate"], m["target"]) for m in meta] != [(t.candidate, t.target) for t in triplets]:
            raise ValueError(f"{root}/synth_meta/queries.{category}.{split}.json does not list the caption file's "
                             "queries in order; rebuild the benchmark with `cirlib synth --overwrite`")
        types += [list(m["changed"]) for m in meta]
    return types


def _cirr_meta(root: Path, split: str) -> list[dict]:
    meta = _meta(root / "synth_meta" / f"queries.{split}.json")
    if [m["pairid"] for m in meta] != [t.pairid for t in CIRR(root).triplets(split)]:
        raise ValueError(f"{root}/synth_meta/queries.{split}.json does not list the caption file's queries in order")
    return meta


def cirr_edit_types(root: Path | str, split: str = "val") -> EditTypes:
    """Edit kinds per query (add, remove, move, count, recolour, reshape, resize, background)."""
    return [[edit["kind"] for edit in m["edits"]] for m in _cirr_meta(Path(root), split)]


def cirr_vague_captions(root: Path | str, split: str = "val") -> list[bool]:
    """Per query: does its caption also fit other images of the gallery (``also_correct``)?"""
    return [bool(m["also_correct"]) for m in _cirr_meta(Path(root), split)]


def query_causes(types: EditTypes, texts: Sequence[str], vague: Sequence[bool] | None = None) -> list[list[str]]:
    """Each query's causes (in :data:`CAUSES` order) from its edit types, its text and its vagueness."""
    if len(types) != len(texts) or (vague is not None and len(vague) != len(types)):
        raise ValueError(f"{len(types)} edit-type lists, {len(texts)} texts and "
                         f"{'no' if vague is None else len(vague)} vagueness flags: give one of each per query")
    unknown = sorted({t for row in types for t in row} - set(CAUSE_OF_EDIT))
    if unknown:
        raise ValueError(f"edit types {unknown} have no cause; known: {sorted(CAUSE_OF_EDIT)}")
    causes = []
    for q, (row, text) in enumerate(zip(types, texts)):
        found = {CAUSE_OF_EDIT[t] for t in row}
        if NEGATION.search(text.lower()):
            found.add("negation")
        if vague is not None and vague[q]:
            found.add("caption noise")
        causes.append([c for c in CAUSES if c in found])
    return causes


def query_groups(dataset: str, root: Path | str, texts: Mapping[str, Sequence[str]] | Sequence[str],
                 split: str = "val") -> tuple[EditTypes, list[list[str]]]:
    """(edit types, causes) of a synthetic split's queries, in the evaluation features' order.

    ``texts``: the queries' texts, FashionIQ as {category: texts} (the categories it names, in order), CIRR as one
    list (its vague captions count as caption noise)."""
    if protocol(dataset).has_categories:
        types = fashioniq_edit_types(root, list(texts), split)
        return types, query_causes(types, [t for part in texts.values() for t in part])
    types = cirr_edit_types(root, split)
    return types, query_causes(types, list(texts), cirr_vague_captions(root, split))
