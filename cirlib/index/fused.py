"""Exact top-k inner-product search with a Triton kernel that never writes the score matrix.

The torch path (``block_topk(queries @ gallery.T, k)``) writes every score to memory and reads it
back; for 4,096 queries against 1M items that is 8 GB per batch in float16, which costs more than
the matrix product. Here one kernel, ``_score_tiles``, computes a (``block_m`` queries x ``block_n``
gallery rows) tile of scores in registers (``tl.dot``: float16/bfloat16 inputs, float32
accumulation) and keeps only:

1. the maximum of every 32 columns (``topk.BLOCK``), written to a (queries, n / 32) float32 matrix;
2. the scores at or above a per-query threshold, appended with their columns to that query's
   candidate list (a per-tile prefix sum gives each kept score its slot; one atomic add per query
   row reserves the slots).

``fused_topk`` launches the kernel twice. Pass 1 (threshold +inf) writes the block maxima. Torch
then sets each query's threshold T to its k-th largest block maximum (-inf when there are fewer
than k blocks). Every item of the top k scores at least T: the k blocks whose maxima reach T hold
k items that do, so the k-th best score is >= T. Pass 2 re-runs the same kernel on just the tiles
holding a block maximum >= T for one of their queries, and collects every score >= T. Torch ranks
the candidates by (score descending, column ascending) and keeps k.

Exactness contract: the result equals a brute force in the same precision (each score the float32
sum of the float16/bfloat16 products; exact products, as both formats have at most 11 significant
bits) that ranks by score, ties to the lower column. Thresholds, candidates and the final order all
come from the scores of one compiled kernel, and a tile's scores depend only on its inputs, so pass
2 reproduces pass 1's numbers bit for bit and no tie or near tie can be lost. The scores themselves
may differ from another float32 sum of the same products (cuBLAS, torch on a CPU) by float32
rounding, as two float32 matmuls do; where every sum is exact (small integers), they are equal.

Capacity: a query keeps at most 32·(k-1) scores above T (fewer than k blocks exceed it), so a list
of 32·k slots overflows only when more than 32 items tie at exactly T (duplicated gallery rows).
Those queries run pass 2 again with room for all their candidates, in groups of at most
``retry_entries`` candidates, so memory stays bounded and the result stays exact.

Cost: one full matrix product, a second product over the tiles that hold candidates (few when the
gallery is large, up to all of them when it is small), a (queries, n / 32) float32 matrix, and
candidate lists. Speed on a GPU is unmeasured (no GPU was available when this was written).
Under ``TRITON_INTERPRET=1`` the kernel runs on CPU tensors (slowly), which is how the tests check it;
there bfloat16 tiles are widened to float32 before ``tl.dot`` (the interpreter's numpy matmul reads
bfloat16 bits as integers), which computes the same exact products.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from cirlib.index.topk import BLOCK, order_keys

DTYPES = (torch.float16, torch.bfloat16)
_NO_KEY = torch.iinfo(torch.int64).min  # sorts below every order_keys key: marks unused candidate slots


@dataclass(frozen=True)
class KernelConfig:
    """Tile shape and launch settings of ``_score_tiles`` (``block_n`` a multiple of 32, each size >= 16 and a
    power of two), and the most candidates one overflow retry may hold."""

    block_m: int = 128
    block_n: int = 128
    block_k: int = 64
    num_warps: int = 8
    num_stages: int = 3
    retry_entries: int = 1 << 26


@triton.jit
def _tile_scores(queries, gallery, rows, cols, m, n, dim, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                 BLOCK_K: tl.constexpr, UPCAST: tl.constexpr):
    """The (BLOCK_M, BLOCK_N) float32 scores of query ``rows`` against gallery ``cols`` (int64 indices),
    accumulated over the features in BLOCK_K steps, always in the same order; zeros outside the matrix."""
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for start in range(0, dim, BLOCK_K):
        ks = start + tl.arange(0, BLOCK_K)
        q = tl.load(queries + rows[:, None] * dim + ks[None, :], mask=(rows < m)[:, None] & (ks < dim)[None, :],
                    other=0.0)
        g = tl.load(gallery + cols[:, None] * dim + ks[None, :], mask=(cols < n)[:, None] & (ks < dim)[None, :],
                    other=0.0)
        if UPCAST:  # interpreter only: its numpy matmul cannot read bfloat16
            q, g = q.to(tl.float32), g.to(tl.float32)
        acc = tl.dot(q, tl.trans(g), acc)
    return acc


@triton.jit
def _score_tiles(queries, gallery, tiles, maxima, thresholds, offsets, capacity, counts, values, columns,
                 m, n, dim, n_blocks, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                 GROUP: tl.constexpr, UPCAST: tl.constexpr):
    """One (query block, gallery tile) pair from ``tiles``: write its GROUP-column maxima, and append the scores
    >= each query's threshold (with their columns) to that query's list at ``offsets`` (``capacity`` slots);
    ``counts`` receives every such score, including those that found no room."""
    query_block = tl.load(tiles + 2 * tl.program_id(0))
    gallery_tile = tl.load(tiles + 2 * tl.program_id(0) + 1)
    rows = query_block.to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = gallery_tile.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    scores = _tile_scores(queries, gallery, rows, cols, m, n, dim, BLOCK_M, BLOCK_N, BLOCK_K, UPCAST)
    valid = (rows < m)[:, None] & (cols < n)[None, :]
    scores = tl.where(valid, scores, float("-inf"))

    block_max = tl.max(tl.reshape(scores, (BLOCK_M, BLOCK_N // GROUP, GROUP)), axis=2)
    blocks = gallery_tile.to(tl.int64) * (BLOCK_N // GROUP) + tl.arange(0, BLOCK_N // GROUP)
    tl.store(maxima + rows[:, None] * n_blocks + blocks[None, :], block_max,
             mask=(rows < m)[:, None] & (blocks < n_blocks)[None, :])

    threshold = tl.load(thresholds + rows, mask=rows < m, other=float("inf"))
    keep = (valid & (scores >= threshold[:, None])).to(tl.int32)
    kept = tl.sum(keep, axis=1)
    if tl.sum(kept, axis=0) > 0:
        base = tl.atomic_add(counts + rows, kept, mask=kept > 0)
        slot = base[:, None] + tl.cumsum(keep, axis=1) - 1
        room = tl.load(capacity + rows, mask=rows < m, other=0)
        at = tl.load(offsets + rows, mask=rows < m, other=0)[:, None] + slot
        store = (keep > 0) & (slot < room[:, None])
        tl.store(values + at, scores, mask=store)
        tl.store(columns + at, cols.to(tl.int32)[None, :] + tl.zeros((BLOCK_M, BLOCK_N), tl.int32), mask=store)


@dataclass(frozen=True)
class _Candidates:
    """Per-query candidate lists in flat buffers: query i found counts[i] scores and kept the first
    min(counts[i], capacity[i]) of them at values/columns[offsets[i]:]."""

    values: torch.Tensor
    columns: torch.Tensor
    offsets: torch.Tensor
    capacity: torch.Tensor
    counts: torch.Tensor


def unsupported(device: torch.device, dtype: torch.dtype) -> str:
    """Why the kernel cannot search ``dtype`` features on ``device`` here ("" when it can)."""
    if dtype not in DTYPES:
        return f"it scores float16 or bfloat16 features, not {str(dtype).removeprefix('torch.')}"
    if triton.knobs.runtime.interpret:
        return ""
    if device.type != "cuda":
        return f"it runs on CUDA (or on CPU tensors under TRITON_INTERPRET=1), not on {device}"
    if not torch.cuda.is_available():
        return "CUDA is not available"
    if torch.cuda.get_device_capability(device) < (8, 0):
        return f"it needs a GPU of compute capability 8.0 or newer, and {torch.cuda.get_device_name(device)} is older"
    return ""


def fused_topk(queries: torch.Tensor, gallery: torch.Tensor, k: int,
               config: KernelConfig = KernelConfig()) -> tuple[torch.Tensor, torch.Tensor]:
    """(float32 values, int64 columns) of each query's min(k, n) best inner products with the (n, dim) gallery,
    best first, ties to the lower column; both inputs float16 or bfloat16 on one device (module docstring)."""
    if queries.dtype != gallery.dtype or queries.dtype not in DTYPES:
        raise TypeError(f"queries and gallery must share float16 or bfloat16, got {queries.dtype} and {gallery.dtype}")
    queries, gallery = queries.contiguous(), gallery.contiguous()
    m, n = len(queries), len(gallery)
    if not m or not n or k < 1:
        return torch.zeros(m, 0, device=queries.device), torch.zeros(m, 0, dtype=torch.int64, device=queries.device)
    maxima = torch.full((m, -(-n // BLOCK)), float("-inf"), device=queries.device)
    everything = torch.ones(m, maxima.shape[1], dtype=torch.bool, device=queries.device)
    _emit(queries, gallery, maxima, torch.full((m,), float("inf"), device=queries.device), everything,
          torch.zeros(m, dtype=torch.int32, device=queries.device), config)
    thresholds = _thresholds(maxima, k)
    hits = maxima >= thresholds[:, None]
    capacity = torch.full((m,), BLOCK * k, dtype=torch.int32, device=queries.device)
    found = _emit(queries, gallery, maxima, thresholds, hits, capacity, config)
    values, columns = _best(found, min(k, n))
    overflow = (found.counts > capacity).nonzero().flatten()
    for rows in _groups(overflow, found.counts[overflow], config.retry_entries):
        chosen = torch.zeros(m, dtype=torch.bool, device=queries.device)
        chosen[rows] = True
        retry = _emit(queries, gallery, maxima, torch.where(chosen, thresholds, float("inf")), hits & chosen[:, None],
                      torch.where(chosen, found.counts, 0), config)
        values[rows], columns[rows] = _best(retry, min(k, n), rows)
    return values, columns


def _thresholds(maxima: torch.Tensor, k: int) -> torch.Tensor:
    """Each query's k-th largest block maximum, or -inf when it has fewer than k blocks (every item a candidate)."""
    if maxima.shape[1] < k:
        return torch.full(maxima.shape[:1], float("-inf"), device=maxima.device)
    return torch.topk(maxima, k, dim=1).values[:, -1].contiguous()


def _emit(queries: torch.Tensor, gallery: torch.Tensor, maxima: torch.Tensor, thresholds: torch.Tensor,
          hits: torch.Tensor, capacity: torch.Tensor, config: KernelConfig) -> _Candidates:
    """Run ``_score_tiles`` on the tiles where ``hits`` (queries x blocks) holds; lists of ``capacity`` slots."""
    (m, dim), n = queries.shape, len(gallery)
    offsets = torch.cumsum(capacity, 0, dtype=torch.int64) - capacity
    size = max(int(capacity.sum()), 1)
    device = queries.device
    found = _Candidates(torch.empty(size, device=device), torch.empty(size, dtype=torch.int32, device=device),
                        offsets, capacity, torch.zeros(m, dtype=torch.int32, device=device))
    tiles = _tiles(hits, config)
    if len(tiles):
        _score_tiles[(len(tiles),)](
            queries, gallery, tiles, maxima, thresholds, offsets, capacity, found.counts, found.values, found.columns,
            m, n, dim, maxima.shape[1], BLOCK_M=config.block_m, BLOCK_N=config.block_n, BLOCK_K=config.block_k,
            GROUP=BLOCK, UPCAST=queries.dtype == torch.bfloat16 and triton.knobs.runtime.interpret,
            num_warps=config.num_warps, num_stages=config.num_stages)
    return found


def _best(found: _Candidates, k: int, rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The k best candidates of each query (of ``rows``, default all) by (score descending, column ascending);
    each query must hold at least k."""
    offsets, kept = found.offsets, torch.minimum(found.counts, found.capacity)
    if rows is not None:
        offsets, kept = offsets[rows], kept[rows]
    slots = torch.arange(max(int(kept.max()), k), device=kept.device)
    present = slots < kept[:, None]
    index = torch.where(present, offsets[:, None] + slots, 0)
    values, columns = found.values[index], found.columns[index].long()
    keys = torch.where(present, order_keys(values, columns), _NO_KEY)
    best = torch.topk(keys, k, dim=1).indices
    return values.gather(1, best), columns.gather(1, best)


def _groups(rows: torch.Tensor, sizes: torch.Tensor, budget: int) -> list[torch.Tensor]:
    """``rows`` split, in order, into groups whose ``sizes`` add up to at most ``budget`` (a larger row alone)."""
    groups, first, total = [], 0, 0
    for i, size in enumerate(sizes.tolist()):
        if total + size > budget and i > first:
            groups.append(rows[first:i])
            first, total = i, 0
        total += size
    return groups + [rows[first:]] if len(rows) else groups


def _tiles(hits: torch.Tensor, config: KernelConfig) -> torch.Tensor:
    """(query block, gallery tile) int32 pairs holding a hit, gallery tile first in the order (so that the programs
    reading one gallery tile run together and share it through the cache)."""
    m, n_blocks = hits.shape
    per_tile = config.block_n // BLOCK
    padded = torch.nn.functional.pad(hits, (0, -n_blocks % per_tile, 0, -m % config.block_m))
    grid = padded.view(len(padded) // config.block_m, config.block_m, -1, per_tile).any(dim=3).any(dim=1)
    return grid.T.nonzero()[:, [1, 0]].to(torch.int32).contiguous()
