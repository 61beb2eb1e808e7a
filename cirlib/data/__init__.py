"""Readers of the official CIR datasets (FashionIQ, CIRR, CIRCO) and of gallery caption files.

Every problem with the files on disk is one :class:`DatasetError` naming the file, the record and
the fix; images listed but absent stop the reader or, with ``on_missing="skip"``, are dropped with a
:class:`MissingImagesWarning`.
"""

from cirlib.data.captions import captions_for, read_gallery_captions
from cirlib.data.circo import CIRCO
from cirlib.data.cirr import CIRR
from cirlib.data.errors import DatasetError
from cirlib.data.fashioniq import FashionIQ, fashioniq_query_text, fashioniq_query_texts_both_orders
from cirlib.data.reader import MissingImagesWarning
from cirlib.data.records import CIRCOQuery, CIRRTriplet, FashionIQTriplet, ImgSet

__all__ = [
    "CIRCO",
    "CIRR",
    "CIRCOQuery",
    "CIRRTriplet",
    "DatasetError",
    "FashionIQ",
    "FashionIQTriplet",
    "ImgSet",
    "MissingImagesWarning",
    "captions_for",
    "fashioniq_query_text",
    "fashioniq_query_texts_both_orders",
    "read_gallery_captions",
]
