"""Exact top-k over score matrices in torch (CPU or CUDA), with cirlib's tie rule and a fast two-stage path.

Tie rule (as in ``cirlib.metrics``): equal scores rank by lower column, also at the k-th place.
``torch.topk`` leaves ties unspecified, so ``topk_first`` asks it for k + 1 items: where the
(k+1)-th equals the k-th, ties straddle the k-th place (rare with float32 scores), and that row
keeps the lowest columns among the tied scores. It then orders the k selected by (score, column)
through unique int64 keys: the score's bits mapped to an order-preserving integer in the high
half, the inverted column in the low half.

``block_topk`` is the fast path for wide rows. ``torch.topk`` over a million columns makes
several passes over the data; instead, split each row into blocks of ``BLOCK`` columns, take
each block's maximum (one memory-bound pass), pick the k blocks with the highest maxima, and rank
only their k·BLOCK scores (plus the last, partial block). It is exact: if an item is among the top
k, fewer than k blocks can have a higher maximum (each such block holds an item ranked above it,
ties going to the lower block), so its block is among the k chosen.
"""

from __future__ import annotations

import torch

BLOCK = 32
"""Columns per block in ``block_topk`` (32 and 64 were equally fast on CPU; 16 and 128 slower)."""

_LOW = (1 << 32) - 1
_SIGN_FLIP = {torch.float32: (torch.int32, 0x7FFFFFFF), torch.float16: (torch.int16, 0x7FFF),
              torch.bfloat16: (torch.int16, 0x7FFF)}


def order_keys(scores: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """Unique int64 keys whose order is (score descending, column ascending) order; columns < 2**32."""
    if scores.dtype not in _SIGN_FLIP:
        raise TypeError(f"scores must be float32, float16 or bfloat16, got {scores.dtype}")
    int_type, magnitude = _SIGN_FLIP[scores.dtype]
    bits = (scores + 0.0).view(int_type)  # + 0.0 turns -0.0 into +0.0, which compare equal
    bits = torch.where(bits < 0, bits ^ magnitude, bits)  # negative floats: reverse the magnitude order
    return (bits.to(torch.int64) << 32) + (_LOW - columns)


def topk_first(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, columns) of each row's min(k, n) best scores of a (rows, n) matrix, best first, ties by lower column."""
    k = min(k, scores.shape[-1])
    values, columns = torch.topk(scores, min(k + 1, scores.shape[-1]), dim=-1)
    # Ties straddle the k-th place exactly when the (k+1)-th best equals the k-th.
    crowded = (values[:, k] == values[:, k - 1]).nonzero().flatten() if values.shape[-1] > k else []
    values, columns = values[:, :k], columns[:, :k]
    if len(crowded):  # keep everything above the k-th score, then the lowest columns that equal it
        rows, kth = scores[crowded], values[crowded, k - 1:]
        above, equal = rows > kth, rows == kth
        keep = above | (equal & (equal.cumsum(dim=-1) <= k - above.sum(dim=-1, keepdim=True)))
        columns[crowded] = keep.nonzero()[:, 1].view(len(crowded), k)  # row-major: k columns per row
        values[crowded] = rows.gather(-1, columns[crowded])
    order = order_keys(values, columns).argsort(dim=-1, descending=True)
    return values.gather(-1, order), columns.gather(-1, order)


def block_topk(scores: torch.Tensor, k: int, block: int = BLOCK) -> tuple[torch.Tensor, torch.Tensor]:
    """Same result as ``topk_first(scores, k)`` for a (rows, n) contiguous matrix, in about one pass over it."""
    rows, n = scores.shape
    n_blocks = n // block
    if n_blocks < 10 * k:  # too few blocks to gain anything (measured crossover on CPU: about 16k columns, k=50)
        return topk_first(scores, k)
    whole = n_blocks * block
    blocks = scores[:, :whole].view(rows, n_blocks, block)
    _, chosen = topk_first(blocks.amax(dim=-1), k)
    chosen = chosen.sort(dim=-1).values  # gallery order, so candidate columns keep the tie rule
    picked = blocks[torch.arange(rows, device=scores.device)[:, None], chosen].reshape(rows, k * block)
    values, local = topk_first(torch.cat([picked, scores[:, whole:]], dim=1), k)  # the partial block always joins
    in_blocks = chosen.gather(1, (local // block).clamp(max=k - 1)) * block + local % block
    return values, torch.where(local < k * block, in_blocks, local - k * block + whole)


def merge_topk(values: torch.Tensor, positions: torch.Tensor, new_values: torch.Tensor,
               new_positions: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Best k of two sorted candidate lists whose positions all precede (first) or follow (second).

    Both lists must hold scores of one dtype: the same similarity rounds differently in float16 and
    float32, so a mix (which ``torch.cat`` would promote silently) would rank partly by rounding."""
    if values.dtype != new_values.dtype:
        raise TypeError(f"cannot merge {values.dtype} with {new_values.dtype} scores: cast both to one dtype")
    merged, columns = topk_first(torch.cat([values, new_values], dim=1), k)
    return merged, torch.cat([positions, new_positions], dim=1).gather(1, columns)
