"""FashionIQ over its official layout, and the query text the reference implementations build.

Root = the ``fashionIQ`` folder::

    captions/cap.{dress,shirt,toptee}.{train,val,test}.json      list of {"candidate", "target", "captions"}
    image_splits/split.{dress,shirt,toptee}.{train,val,test}.json list of image names (the gallery)
    images/<name>.png   (some copies use .jpg; accepted per image)

Copies of FashionIQ commonly lack a few percent of the images (dead URLs). The peers drop them
silently; here they are an error naming them, or, with ``on_missing="skip"``, a reported drop.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

from cirlib.data.jsonio import check_names, iter_records
from cirlib.data.reader import DatasetReader
from cirlib.data.records import FashionIQTriplet

_STRIP = ".?, "


def fashioniq_query_text(captions: Sequence[str], flip: bool = False) -> str:
    """The query text "<C1> and <c2>" from a triplet's two captions.

    Each caption is stripped of ".?, " at both ends and the first letter of the first one is
    upper-cased (the rest is left as is). ``flip`` swaps the two captions first, the training
    augmentation of CLIP4Cir. Without ``flip`` this is the single form CLIP4Cir validates with.
    """
    first, second = (c.strip(_STRIP) for c in captions)
    if flip:
        first, second = second, first
    return f"{first[:1].upper()}{first[1:]} and {second}"


def fashioniq_query_texts_both_orders(captions: Sequence[str]) -> tuple[str, str]:
    """Both orders, ("<C1> and <c2>", "<C2> and <c1>").

    SEARLE encodes both orders and averages their normalised text features; use this for SEARLE's
    protocol and :func:`fashioniq_query_text` (the default) for CLIP4Cir's single form.
    """
    return fashioniq_query_text(captions), fashioniq_query_text(captions, flip=True)


class FashionIQ(DatasetReader):
    """Reader of FashionIQ triplets and galleries per category and split.

    ``on_missing="error"`` raises one DatasetError naming the absent images; ``"skip"`` drops the
    triplets and gallery entries that need them, warns (MissingImagesWarning) and records them in
    ``self.missing``. Test triplets have ``target=None``: the release withholds test targets.
    """

    DATASET = "FashionIQ"
    MARKERS = ("captions", "image_splits")
    LAYOUT = "captions/, image_splits/ and images/ (the folder named fashionIQ)"
    CATEGORIES = ("dress", "shirt", "toptee")
    SPLITS = ("train", "val", "test")
    EXTENSIONS = (".png", ".jpg")  # in order of preference when both exist

    def _check(self, category: str, split: str) -> None:
        if category not in self.CATEGORIES:
            raise ValueError(f"unknown FashionIQ category {category!r}; expected one of {self.CATEGORIES}")
        if split not in self.SPLITS:
            raise ValueError(f"unknown FashionIQ split {split!r}; expected one of {self.SPLITS}")

    @property
    def images_dir(self) -> Path:
        """The folder that holds the images."""
        return self.root / "images"

    @cached_property
    def _image_files(self) -> dict[str, str]:
        """Image name -> file name in images/, from one directory listing (.png preferred)."""
        files: dict[str, str] = {}
        for file in self._files_in(self.images_dir):
            stem, ext = os.path.splitext(file)
            if ext.lower() in self.EXTENSIONS and (stem not in files or ext.lower() == self.EXTENSIONS[0]):
                files[stem] = file
        return files

    def image_path(self, name: str) -> Path:
        """Path of an image; the .png path it should have if the image is not on disk."""
        return self.images_dir / self._image_files.get(name, name + self.EXTENSIONS[0])

    def _hint(self, names: list[str]) -> str:
        where = f"; expected in {self.images_dir} as <name>.png or <name>.jpg"
        return where + ("" if self.images_dir.is_dir() else ", a folder that does not exist")

    def triplets(self, category: str, split: str) -> list[FashionIQTriplet]:
        """The triplets of one category and split, in file order."""
        self._check(category, split)
        return self._cached(("triplets", category, split), lambda: self._read_triplets(category, split))

    def _read_triplets(self, category: str, split: str) -> list[FashionIQTriplet]:
        path = self.root / "captions" / f"cap.{category}.{split}.json"
        data = self._json(path, list, f"the FashionIQ {category} {split} caption file, a JSON list of "
                                      '{"candidate", "target", "captions"} objects')
        triplets = []
        for rec in iter_records(data, path, id_field="candidate"):
            captions = rec.get_list("captions", str)
            if len(captions) != 2:
                raise rec.error(f'field "captions" has {len(captions)} captions, expected 2',
                                f"re-download {path.name}: every FashionIQ record has two captions")
            candidate = self._contained(rec.get("candidate", str), path, rec.label)
            target = None if split == "test" else self._contained(rec.get("target", str), path, rec.label)
            triplets.append(FashionIQTriplet(category, candidate, captions, target))
        return self._drop_missing(path, triplets, lambda t: [n for n in (t.candidate, t.target) if n is not None],
                                  self._image_files.__contains__, "triplets", self._hint)

    def gallery(self, category: str, split: str) -> list[str]:
        """The image names of one category and split (the retrieval gallery), in file order."""
        self._check(category, split)
        return self._cached(("gallery", category, split), lambda: self._read_gallery(category, split))

    def _check_names(self, path: Path, data: list) -> list[str]:
        """A split file's items: image names, each a file name that stays inside the root."""
        return [self._contained(name, path, str(index)) for index, name in enumerate(check_names(path, data))]

    def _read_gallery(self, category: str, split: str) -> list[str]:
        path = self.root / "image_splits" / f"split.{category}.{split}.json"
        names = self._json(path, list, f"the FashionIQ {category} {split} split file, a JSON list of image names",
                            self._check_names)
        return self._drop_missing(path, list(names), lambda n: (n,), self._image_files.__contains__,
                                  "gallery images", self._hint)
