"""CIRR over its official layout.

Root = the folder that holds::

    cirr/captions/cap.rc2.{train,val,test1}.json       list of caption records (test1: no targets)
    cirr/image_splits/split.rc2.{train,val,test1}.json  {image name: "./dev/dev-0-0-img0.png", ...}
    train/<k>/..., dev/..., test1/...                    the images, where the split file says

Image paths are resolved through the split file, never guessed: downloads that fetch the images
by URL often lose the ``train/<k>/`` folders, and the error then says which path was expected.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from cirlib.data.errors import DatasetError
from cirlib.data.jsonio import Record, iter_records, value_kind
from cirlib.data.reader import DatasetReader
from cirlib.data.records import CIRRTriplet, ImgSet

_SOFT_VALUES = (1.0, 0.5, -1.0)


class CIRR(DatasetReader):
    """Reader of CIRR triplets and galleries per split ("train", "val", "test1").

    ``on_missing="error"`` raises one DatasetError naming the absent images; ``"skip"`` drops the
    triplets that need them (reference, hard target or img_set member) and the gallery entries,
    warns (MissingImagesWarning) and records them in ``self.missing``.
    """

    DATASET = "CIRR"
    MARKERS = ("cirr/captions", "cirr/image_splits")
    LAYOUT = "cirr/captions/, cirr/image_splits/ and the image folders train/, dev/, test1/"
    SPLITS = ("train", "val", "test1")

    def _check(self, split: str) -> None:
        if split not in self.SPLITS:
            raise ValueError(f"unknown CIRR split {split!r}; expected one of {self.SPLITS} "
                             "(the val images live in dev/, but the split is called 'val')")

    def _split_path(self, split: str) -> Path:
        return self.root / "cirr" / "image_splits" / f"split.rc2.{split}.json"

    def _relpaths(self, split: str) -> dict[str, str]:
        """Image name -> path relative to the root, from the split file."""
        return self._json(self._split_path(split), dict, f"the CIRR {split} split file, a JSON object mapping "
                          'image names to relative paths like "./dev/dev-0-0-img0.png"', self._check_relpaths)

    def _check_relpaths(self, path: Path, relpaths: dict) -> dict[str, str]:
        """Every value of a split file is a path string that stays inside the root."""
        for name, rel in relpaths.items():
            if not isinstance(rel, str):
                raise DatasetError(path, f"the path of image {name!r} is {value_kind(rel)}, expected a string",
                                   f"re-download {path.name} from the official release", record=repr(name))
            self._contained(rel, path, repr(name))
        return relpaths

    def image_path(self, name: str, split: str) -> Path:
        """Path of an image as the split file gives it (a DatasetError names the file if it is not listed)."""
        self._check(split)
        relpaths = self._relpaths(split)
        if name not in relpaths:
            raise DatasetError(self._split_path(split), f"image {name!r} is not listed in it",
                               f"pass an image of the {split} split, or re-download {self._split_path(split).name} "
                               "from the official release if it should be there")
        return self.root / relpaths[name]

    def _present(self, split: str, name: str) -> bool:
        path = self.image_path(name, split)
        return path.name in self._files_in(path.parent)

    def _hint(self, split: str, names: list[str]) -> str:
        expected = [str(self.image_path(n, split)) for n in names[:2]]
        hint = f"; expected e.g. {' and '.join(expected)}"
        if any(Path(self._relpaths(split)[n]).parts[0] == "train" for n in names):
            hint += (f" (CIRR downloads sometimes lose the train/<k>/ folders: check that "
                     f"{self.root / 'train'} holds the numbered folders 0, 1, 2, ...)")
        return hint

    def triplets(self, split: str) -> list[CIRRTriplet]:
        """The triplets of a split, in file order; test1 triplets have no targets."""
        self._check(split)
        return self._cached(("triplets", split), lambda: self._read_triplets(split))

    def _read_triplets(self, split: str) -> list[CIRRTriplet]:
        path = self.root / "cirr" / "captions" / f"cap.rc2.{split}.json"
        data = self._json(path, list, f"the CIRR {split} caption file, a JSON list of caption records")
        relpaths = self._relpaths(split)
        has_targets = split != "test1"
        triplets = []
        for rec in iter_records(data, path, id_field="pairid"):
            triplet = _parse_triplet(rec, has_targets)
            needed = [("reference", triplet.reference), ("target_hard", triplet.target_hard)]
            needed += [(f"img_set.members[{i}]", m) for i, m in enumerate(triplet.img_set.members)]
            for field, name in needed:
                if name is not None and name not in relpaths:
                    raise rec.error(f'field "{field}" names image {name!r}, which '
                                    f"{self._split_path(split).name} does not list",
                                    "use the caption and split files of the same release (rc2) and split")
            triplets.append(triplet)
        return self._drop_missing(
            path, triplets, lambda t: [n for n in (t.reference, t.target_hard, *t.img_set.members) if n is not None],
            partial(self._present, split), "triplets", partial(self._hint, split))

    def gallery(self, split: str) -> list[str]:
        """The image names of a split (the retrieval gallery), in split-file order."""
        self._check(split)
        return self._cached(("gallery", split), lambda: self._drop_missing(
            self._split_path(split), list(self._relpaths(split)), lambda n: (n,),
            partial(self._present, split), "gallery images", partial(self._hint, split)))


def _parse_triplet(rec: Record, has_targets: bool) -> CIRRTriplet:
    """One caption record. Targets are read only where the split has them (not test1)."""
    reference = rec.get("reference", str)
    fix = f"re-download {rec.path.name} from the official release or correct this record"
    img = rec.sub("img_set")
    members = img.get_list("members", str)
    if reference not in members:
        raise rec.error(f'"img_set.members" does not contain the reference {reference!r}', fix)
    soft = rec.get_map("target_soft", float) if has_targets else {}
    for name, value in soft.items():
        if value not in _SOFT_VALUES:
            raise rec.error(f'field "target_soft" gives {name!r} the value {value:g}, expected 1.0, 0.5 or -1.0', fix)
    return CIRRTriplet(
        pairid=rec.get("pairid", int),
        reference=reference,
        caption=rec.get("caption", str),
        img_set=ImgSet(id=img.get("id", int), members=members, reference_rank=img.get("reference_rank", int),
                       target_rank=img.get("target_rank", int) if has_targets else None),
        target_hard=rec.get("target_hard", str) if has_targets else None,
        target_soft=soft,
    )
