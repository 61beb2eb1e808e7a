"""CIRCO over its official layout.

Root = the folder that holds::

    annotations/{val,test}.json                                   list of query records (test: no targets)
    COCO2017_unlabeled/annotations/image_info_unlabeled2017.json  {"images": [{"id", "file_name", ...}], ...}
    COCO2017_unlabeled/unlabeled2017/<file_name>                   e.g. 000000000123.jpg

Images are COCO ids; their files are named in image_info (zero-padded to 12 digits).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from cirlib.data.jsonio import Record, iter_records
from cirlib.data.reader import DatasetReader
from cirlib.data.records import CIRCOQuery

_COCO = "COCO2017_unlabeled"


class CIRCO(DatasetReader):
    """Reader of CIRCO queries ("val", "test") and of the gallery, the COCO 2017 unlabeled images.

    ``on_missing="error"`` raises one DatasetError naming the absent image files; ``"skip"`` drops
    the gallery entries and the queries whose reference, target or any ground truth is absent,
    warns (MissingImagesWarning) and records them in ``self.missing``.
    """

    DATASET = "CIRCO"
    MARKERS = ("annotations", _COCO)
    LAYOUT = (f"annotations/{{val,test}}.json and {_COCO}/ (with annotations/image_info_unlabeled2017.json "
              "and unlabeled2017/)")
    SPLITS = ("val", "test")

    @property
    def images_dir(self) -> Path:
        """The folder that holds the COCO images."""
        return self.root / _COCO / "unlabeled2017"

    @property
    def _info_path(self) -> Path:
        return self.root / _COCO / "annotations" / "image_info_unlabeled2017.json"

    @cached_property
    def _file_names(self) -> dict[int, str]:
        """COCO image id -> file name (checked to stay inside the root), in image_info order."""
        path = self._info_path
        info = self._json(path, dict, 'the COCO 2017 unlabeled image info, a JSON object with an "images" list')
        images = Record(path, None, info).get("images", list)
        return {rec.get("id", int): self._contained(rec.get("file_name", str), path, rec.label)
                for rec in iter_records(images, path, id_field="id")}

    def image_path(self, img_id: int) -> Path:
        """Path of an image (the zero-padded COCO name if image_info does not list the id)."""
        return self.images_dir / self._file_names.get(img_id, f"{img_id:012d}.jpg")

    def _present(self, file_name: str) -> bool:
        return file_name in self._files_in(self.images_dir)

    def _hint(self, names: list[str]) -> str:
        absent = "" if self.images_dir.is_dir() else ", a folder that does not exist"
        return f"; expected in {self.images_dir}{absent}"

    def gallery(self) -> list[int]:
        """The gallery image ids, in image_info order."""
        return self._cached(("gallery",), lambda: self._drop_missing(
            self._info_path, list(self._file_names), lambda i: (self._file_names[i],), self._present,
            "gallery images", self._hint))

    def queries(self, split: str) -> list[CIRCOQuery]:
        """The queries of a split, in file order; test queries have no target and no ground truth."""
        if split not in self.SPLITS:
            raise ValueError(f"unknown CIRCO split {split!r}; expected one of {self.SPLITS}")
        return self._cached(("queries", split), lambda: self._read_queries(split))

    def _read_queries(self, split: str) -> list[CIRCOQuery]:
        path = self.root / "annotations" / f"{split}.json"
        data = self._json(path, list, f"the CIRCO {split} annotations, a JSON list of query records")
        queries = [self._parse_query(rec, split != "test") for rec in iter_records(data, path, id_field="id")]
        return self._drop_missing(
            path, queries, lambda q: [self._file_names[i] for i in _image_ids(q)], self._present, "queries", self._hint)

    def _parse_query(self, rec: Record, has_targets: bool) -> CIRCOQuery:
        """One query record; its image ids must be COCO unlabeled images."""
        query = CIRCOQuery(
            id=rec.get("id", int),
            reference_img_id=rec.get("reference_img_id", int),
            relative_caption=rec.get("relative_caption", str),
            shared_concept=rec.get("shared_concept", str),
            target_img_id=rec.get("target_img_id", int) if has_targets else None,
            gt_img_ids=rec.get_list("gt_img_ids", int) if has_targets else (),
            semantic_aspects=rec.get_list("semantic_aspects", str, required=False) or (),
        )
        unknown = [i for i in _image_ids(query) if i not in self._file_names]
        if unknown:
            raise rec.error(f"image id {unknown[0]} is not in {self._info_path.name}",
                            f"use the COCO 2017 unlabeled image info ({self._info_path.relative_to(self.root)}) "
                            "that CIRCO is built on")
        return query


def _image_ids(query: CIRCOQuery) -> list[int]:
    """Every image a query needs: reference, target and ground truths."""
    target = [] if query.target_img_id is None else [query.target_img_id]
    return [query.reference_img_id, *target, *query.gt_img_ids]
