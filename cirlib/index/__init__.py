"""Retrieval indexes behind one interface: exact torch search (CPU/CUDA) and FAISS factory strings.

    index = build_index("exact", 512, model=encoder.identity)     # or "Flat", "HNSW32", "IVF4096,PQ64"
    index.add(gallery_features)                                    # ids 0..n-1 unless given
    scores, ids = index.search(queries, k=50, exclude=reference_ids)
    index.save("gallery.safetensors");  load_index("gallery.safetensors", model=encoder.identity)
"""

from cirlib.index.base import Index, IndexMismatchError
from cirlib.index.exact import ExactIndex
from cirlib.index.factory import EXACT, build_index, load_index
from cirlib.index.faiss_index import FaissIndex
from cirlib.index.topk import block_topk, topk_first

__all__ = ["EXACT", "ExactIndex", "FaissIndex", "Index", "IndexMismatchError", "block_topk", "build_index",
           "load_index", "topk_first"]
