"""Captions of gallery images written by a captioning model, for training-free methods (WeiMoCIR).

A caption file is a JSON list of ``{"candidate": <image name>, "captions": [<string>, ...]}``, the
format of the WeiMoCIR reference code. Where such files live is decided by the caller. The image
names are only keys: no path is made from them (image paths come from the dataset readers, which keep
them inside the dataset root), so they need no containment check.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from cirlib.data.jsonio import expect, iter_records, load_json


def read_gallery_captions(path: str | os.PathLike) -> dict[str, tuple[str, ...]]:
    """Image name -> its captions, from a gallery caption file (one record per image)."""
    path = Path(path)
    what = 'a gallery caption file, a JSON list of {"candidate": <image name>, "captions": [...]} objects'
    data = expect(load_json(path, what, "write the captions first (one record per gallery image), "
                                        "or pass the path of the caption file you wrote"), list, path, what)
    captions: dict[str, tuple[str, ...]] = {}
    for rec in iter_records(data, path, id_field="candidate"):
        name = rec.get("candidate", str)
        if name in captions:
            raise rec.error(f"image {name!r} has a second record", "keep one record per image")
        captions[name] = rec.get_list("captions", str)
    return captions


def captions_for(names: Sequence[str], captions: Mapping[str, Sequence[str]], r: int) -> list[tuple[str, ...]]:
    """Exactly ``r`` captions per name: truncated, or padded with "".

    An image absent from ``captions`` gets ``r`` empty captions, as the WeiMoCIR reference code
    gives a missing image an empty caption.
    """
    if r < 1:
        raise ValueError(f"r must be at least 1, got {r}")
    return [(tuple(captions.get(name, ())) + ("",) * r)[:r] for name in names]
