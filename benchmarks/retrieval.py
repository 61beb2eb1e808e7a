"""Retrieval backends at 10k / 100k / 1M (/ 10M) gallery items: build time, queries/s and agreement with exact
float32 search.

    python benchmarks/retrieval.py                 # CPU: 10k, 100k, 1M (12 min here: 1 thread, busy machine)
    python benchmarks/retrieval.py --sizes 10k,100k --backends "exact;Flat;HNSW32"
    python benchmarks/retrieval.py --device cuda --sizes 1m --backends exact --queries 65536
    python benchmarks/retrieval.py --device cuda --sizes 100k,1m,10m --backends "exact;fused" --dtype float16
    python benchmarks/retrieval.py --sizes 20000 --queries 1000 --backends exact --dtype float16   # drift

Features are random L2-normalised 512-d vectors (seeded): a hard case for approximate indexes,
which profit from the clustered structure of real features, so their recall here is pessimistic;
``--data clustered`` draws them around 1,024 random centres instead (cosine to the centre about 0.7).
Each backend retrieves the top ``--k`` (default 50, what CIR evaluation needs) and is compared with
exact float32 search: recall@10 (its first 10 ids against float32's first 10), recall@k, and the
fraction of queries whose k ids equal float32's, in order ("same top-k"). Build time includes
training (IVF/PQ on a subsample of 39 vectors per k-means centroid, faiss's recommended minimum: per
IVF list, or 256 x 39 for PQ's codebooks), adding, and a warm-up search (one query; one batch of
4,096 on CUDA). ``exact`` is cirlib's ExactIndex on its torch path (matmul + two-stage top-k);
``fused`` is ExactIndex on its Triton kernel (``cirlib.index.fused``: CUDA, float16/bfloat16 only,
otherwise the row says why it was skipped). The plain baseline in the same run is one ``matmul`` +
``torch.topk`` per chunk of 1,024 queries over the whole gallery (chunks shrink so that one score
matrix stays within 1 GiB on CPU, 4 GiB on CUDA: at 10M); every row prints its speed as a ratio to
it. All score in ``--dtype``: float32 by default on every device; float16 or bfloat16 measure the
speed and the ranking drift of reduced precision. ``10m`` (10M x 512: 20 GB of float32 features,
made on the host) is meant for ``--device cuda``.
``IVF{nlist}`` takes nlist = the power of two nearest to ``--nlist-factor``·sqrt(gallery size).
"""

from __future__ import annotations

import argparse
import math
import platform
import time

import faiss
import numpy as np
import torch
import torch.nn.functional as F

from cirlib.index import ExactIndex, build_index
from cirlib.index.exact import fused_problem
from cirlib.util.device import exact_float32, resolve_device

DIM = 512
SIZES = {"10k": 10_000, "100k": 100_000, "1m": 1_000_000, "10m": 10_000_000}
PLAIN_CHUNK = 1024
SCORE_BYTES = {"cpu": 1 << 30, "cuda": 4 << 30}  # the most one plain score matrix may take, by device type
CENTRES = 1024
EXACT_PATHS = {"exact": "torch matmul + block_topk", "fused": "Triton kernel"}  # ExactIndex rows, by search path


def unit_vectors(n: int, seed: int, device: torch.device, clustered: bool) -> torch.Tensor:
    """n random unit vectors (around shared centres if ``clustered``), made in blocks to bound memory."""
    generator = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(CENTRES, DIM, generator=torch.Generator().manual_seed(12345)), dim=1)
    blocks = []
    for start in range(0, n, 65_536):
        block = torch.randn(min(65_536, n - start), DIM, generator=generator)
        if clustered:
            block = centres[torch.randint(0, CENTRES, (len(block),), generator=generator)] + block / DIM ** 0.5
        blocks.append(F.normalize(block, dim=1))
    return torch.cat(blocks).to(device)


def default_queries(n_gallery: int, device: torch.device) -> int:
    """Enough queries for a stable rate: on CPU about 40 GFLOP per exact pass (200 to 2,000 queries)."""
    if device.type == "cuda":
        return 65_536
    return int(min(2000, max(200, 4e10 / (2 * DIM * n_gallery))))


def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work, so that timings cover it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_chunk(gallery: torch.Tensor) -> int:
    """Queries per baseline chunk: 1,024, fewer where one score matrix would pass 1 GiB (CPU) or 4 GiB (CUDA)."""
    budget = SCORE_BYTES["cuda" if gallery.device.type == "cuda" else "cpu"]
    return max(1, min(PLAIN_CHUNK, budget // (gallery.element_size() * len(gallery))))


def plain_top_k(queries: torch.Tensor, gallery: torch.Tensor, k: int) -> tuple[float, np.ndarray]:
    """The baseline: matmul + torch.topk per query chunk, in the gallery's dtype; returns (queries/s, ids)."""
    chunk = plain_chunk(gallery)
    plain_top_k_chunks(queries[:chunk], gallery, k, chunk)  # warm-up
    synchronize(gallery.device)
    start = time.perf_counter()
    ids = plain_top_k_chunks(queries, gallery, k, chunk)
    return len(queries) / (time.perf_counter() - start), ids


def plain_top_k_chunks(queries: torch.Tensor, gallery: torch.Tensor, k: int, chunk: int) -> np.ndarray:
    with torch.inference_mode(), exact_float32():
        found = [torch.topk(queries[i:i + chunk].to(gallery.dtype) @ gallery.T, k, dim=1).indices
                 for i in range(0, len(queries), chunk)]
    return torch.cat(found).cpu().numpy()


def recall_at(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean fraction of each query's first k true ids among its first k found ids."""
    return float(np.mean([len(np.intersect1d(a[:k], b[:k])) / k for a, b in zip(found, truth)]))


def agreement(found: np.ndarray, truth: np.ndarray) -> str:
    """recall@10, recall@k and the fraction of queries whose k ids equal the truth's, in order, as table cells."""
    k = truth.shape[1]
    same = float(np.mean((found == truth).all(axis=1)))
    return f"{recall_at(found, truth, 10):>11.3f}{recall_at(found, truth, k):>10.3f}{same:>11.3f}"


def ivf_lists(n_gallery: int, nlist_factor: float) -> int:
    """The power of two nearest to nlist_factor * sqrt(gallery size)."""
    return 2 ** round(math.log2(nlist_factor * math.sqrt(n_gallery)))


def run_backend(spec: str, gallery: torch.Tensor, queries: torch.Tensor, k: int, device: torch.device,
                nlist: int, dtype: str) -> dict:
    """Build, warm up and time one backend (``exact`` and ``fused`` in ``dtype``); returns its figures and top-k
    ids."""
    start = time.perf_counter()
    if spec in EXACT_PATHS:
        index = build_index("exact", DIM, device=device, dtype=dtype, fused=spec == "fused")
    else:  # train on 39 vectors per k-means centroid: IVF lists, or 256 per PQ codebook
        index = build_index(spec, DIM, train_size=39 * max(nlist, 256))
    index.add(gallery)
    index.search(queries[:4096 if device.type == "cuda" else 1], k)  # warm-up: one full batch on CUDA
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    _, ids = index.search(queries, k)
    search_s = time.perf_counter() - start
    return {"spec": spec, "build_s": build_s, "qps": len(queries) / search_s, "ids": ids,
            "detail": (f"dtype={str(index.dtype).removeprefix('torch.')}, {EXACT_PATHS[spec]}" if spec in EXACT_PATHS
                       else index.params)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10k,100k,1m", help=f"comma-separated: {', '.join(SIZES)} or integers")
    parser.add_argument("--backends", default="exact;fused;Flat;HNSW32;IVF{nlist},PQ64",
                        help="semicolon-separated: 'exact' (cirlib ExactIndex, torch path), 'fused' (ExactIndex, "
                             "Triton kernel) and faiss factory strings; {nlist} is filled in")
    parser.add_argument("--hnsw-max", type=int, default=10_000,
                        help="skip HNSW above this gallery size (its build took 214 s at 100k on one busy core)")
    parser.add_argument("--nlist-factor", type=float, default=1.0, help="IVF lists = factor * sqrt(gallery size)")
    parser.add_argument("--queries", type=int, default=None, help="queries per size (default: by size and device)")
    parser.add_argument("--k", type=int, default=50, help="results per query")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (ExactIndex and the plain baseline)")
    parser.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32",
                        help="scoring precision of ExactIndex and the plain baseline (faiss: always float32)")
    parser.add_argument("--data", choices=("random", "clustered"), default="random")
    args = parser.parse_args()
    started = time.perf_counter()
    device = resolve_device(args.device)
    print(f"machine: {platform.machine()} {platform.processor() or ''}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), faiss {faiss.__version__} ({faiss.omp_get_max_threads()} threads), "
          f"device {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}")
    for size in args.sizes.split(","):
        n = SIZES.get(size.lower()) or int(size)
        n_queries = args.queries or default_queries(n, device)
        clustered = args.data == "clustered"
        gallery, queries = unit_vectors(n, 0, device, clustered), unit_vectors(n_queries, 1, device, clustered)
        truth_index = ExactIndex(DIM, device=device, dtype="float32")
        truth_index.add(gallery)
        truth = truth_index.search(queries, args.k)[1]
        del truth_index
        plain_gallery = gallery.to(getattr(torch, args.dtype))
        plain_qps, plain_ids = plain_top_k(queries, plain_gallery, args.k)
        print(f"\n{n:,} x {DIM} gallery ({args.data}), {n_queries:,} queries, top-{args.k}")
        print(f"{'backend':<22}{'build s':>9}{'queries/s':>12}{'recall@10':>11}{f'recall@{args.k}':>10}"
              f"{'same top-k':>11}  settings")
        print(f"{'plain matmul+topk':<22}{'-':>9}{plain_qps:>12,.0f}{agreement(plain_ids, truth)}  "
              f"dtype={args.dtype}, chunks of {plain_chunk(plain_gallery)} queries")
        del plain_gallery
        nlist = ivf_lists(n, args.nlist_factor)
        for spec in (s.replace("{nlist}", str(nlist)) for s in args.backends.split(";")):
            if spec.startswith("HNSW") and n > args.hnsw_max:
                print(f"{spec:<22}  skipped above --hnsw-max {args.hnsw_max:,}")
                continue
            if spec == "fused" and (problem := fused_problem(device, getattr(torch, args.dtype))):
                print(f"{spec:<22}  skipped: {problem}")
                continue
            result = run_backend(spec, gallery, queries, args.k, device, nlist, args.dtype)
            print(f"{spec:<22}{result['build_s']:>9.1f}{result['qps']:>12,.0f}"
                  f"{agreement(result['ids'], truth)}  {result['detail']}  ({result['qps'] / plain_qps:.2f}x plain)",
                  flush=True)
        del gallery, queries
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
