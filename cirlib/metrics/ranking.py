"""Turn a similarity matrix into ranked lists of gallery names, with one documented tie rule.

Tie rule, everywhere in cirlib: equal scores are ordered by LOWER GALLERY INDEX first (a stable
descending sort). Retrieval numbers on small or quantised galleries depend on it, so it is fixed
here rather than left to whatever ``argsort`` or ``argpartition`` happens to return.

Inputs may be numpy arrays, lists, or torch tensors (anything ``np.asarray`` accepts; tensors are
detached and moved to the CPU first). A 1-D similarity is one query.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Container, Hashable, Iterable, Mapping, Sequence, Sized
from typing import Any

import numpy as np

Name = Hashable
"""A gallery item's name: an image file name (FashionIQ, CIRR) or an integer COCO id (CIRCO)."""

# Below this ratio of k to gallery size a partial selection beats a full stable sort.
_PARTIAL_MAX_FRACTION = 0.25
# Rows per block in the partial path, so its temporary arrays stay near 2**22 elements.
_BLOCK_ELEMENTS = 1 << 22


def _listing(items: Sequence[Any], noun: str, limit: int = 5) -> str:
    """'3 unknown names: 'a', 'b', 'c'' -- the first few offenders plus the count, for error messages."""
    shown = ", ".join(repr(item) for item in items[:limit])
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return f"{len(items)} {noun}: {shown}{more}"


def _duplicates(items: Iterable[Any]) -> list[Any]:
    """Items that occur more than once, in order of first occurrence."""
    return [item for item, count in Counter(items).items() if count > 1]


def _same_length(sizes: Mapping[str, Sized]) -> int:
    """Check that every named sequence has the same length; return it."""
    lengths = {name: len(seq) for name, seq in sizes.items()}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{name} has {n}" for name, n in lengths.items())
        raise ValueError(f"one entry per query is needed, but {detail}")
    return next(iter(lengths.values()))


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    """Cut-offs as a tuple of positive ints (K=0 or a float K is always a caller's mistake)."""
    ks = tuple(ks)
    bad = [k for k in ks if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1]
    if not ks or bad:
        raise ValueError(f"cut-offs must be positive integers, got {ks!r}")
    return tuple(int(k) for k in ks)


def _check_k(k: int | None) -> int | None:
    """A ranking cut-off: None (keep everything) or a positive int."""
    return None if k is None else _check_ks([k])[0]


def _as_scores(similarity: Any) -> np.ndarray:
    """A (Q, G) floating array from an array, list or tensor; NaN scores are refused (they have no rank)."""
    if hasattr(similarity, "detach"):  # torch tensor: drop autograd, leave the GPU
        similarity = similarity.detach().cpu()
    scores = np.asarray(similarity)
    if scores.ndim == 1:
        scores = scores[None, :]
    if scores.ndim != 2:
        raise ValueError(f"similarity must be (queries, gallery), got shape {scores.shape}")
    if not np.issubdtype(scores.dtype, np.floating):
        scores = scores.astype(np.float64)  # negating unsigned ints would wrap around
    nan_rows = np.flatnonzero(np.isnan(scores).any(axis=1))
    if nan_rows.size:
        raise ValueError(f"similarity has NaN scores in {_listing(nan_rows.tolist(), 'query rows')}; "
                         "fix the features (an all-zero vector normalised to NaN is the usual cause)")
    return scores


def _name_index(gallery_names: Sequence[Name], n_columns: int) -> dict[Name, int]:
    """Map each gallery name to its column, checking there is one unique name per column."""
    if len(gallery_names) != n_columns:
        raise ValueError(f"similarity has {n_columns} gallery columns but {len(gallery_names)} gallery names "
                         "were given; pass the names in column order")
    duplicated = _duplicates(gallery_names)
    if duplicated:
        raise ValueError(f"gallery names must be unique; {_listing(duplicated, 'names repeat')}")
    return {name: column for column, name in enumerate(gallery_names)}


def _name_array(gallery_names: Sequence[Name]) -> np.ndarray:
    """Gallery names as a 1-D object array, for fancy indexing by column (keeps str and int names as given)."""
    names = np.empty(len(gallery_names), dtype=object)
    names[:] = list(gallery_names)
    return names


def _require_known(names: Iterable[Name], gallery: Container[Name], what: str) -> None:
    """Raise if any of ``names`` is not in the gallery: it could never be retrieved and would silently score 0."""
    unknown = list(dict.fromkeys(name for name in names if name not in gallery))
    if unknown:
        raise ValueError(f"{_listing(unknown, what + ' not in the gallery')}. Fix: use the gallery's own names "
                         "(same type and spelling), or drop the queries whose images are missing")


def _as_name_list(row: Any, query: int) -> list[Name]:
    """One query's names as a list; a bare string is refused (it would iterate as characters)."""
    if isinstance(row, (str, bytes)):
        raise ValueError(f"query {query}: expected a list of names, got the string {row!r}")
    return list(row)


def top_k_indices(similarity: Any, k: int | None = None) -> np.ndarray:
    """Column indices of each row's ``k`` highest scores, best first, ties by lower index: shape (Q, k).

    Equal to ``np.argsort(-similarity, kind="stable")[:, :k]``. For ``k`` much smaller than the
    gallery it selects candidates in linear time and sorts only those, keeping the tie rule at
    the k-th boundary too. ``k=None`` (or ``k`` beyond the gallery size) ranks the whole gallery.
    """
    scores = _as_scores(similarity)
    n_gallery = scores.shape[1]
    k = min(_check_k(k) or n_gallery, n_gallery)
    if k >= _PARTIAL_MAX_FRACTION * n_gallery:
        return np.argsort(-scores, axis=1, kind="stable")[:, :k]
    rows = max(1, _BLOCK_ELEMENTS // n_gallery)
    return np.concatenate([_partial_top(scores[start:start + rows], k)
                           for start in range(0, scores.shape[0], rows)])


def _partial_top(scores: np.ndarray, k: int) -> np.ndarray:
    """``top_k_indices`` for one block of rows, with 0 < k < G, in O(G) per row plus a sort of k."""
    negated = -scores
    threshold = np.partition(negated, k - 1, axis=1)[:, k - 1:k]  # the k-th best score per row
    better = negated < threshold
    tied = negated == threshold
    # Keep every strictly better column and, of the columns tied at the threshold, the lowest-index ones.
    still_needed = k - better.sum(axis=1, keepdims=True)
    keep = better | (tied & (np.cumsum(tied, axis=1) <= still_needed))
    columns = np.nonzero(keep)[1].reshape(len(scores), k)  # ascending column order within each row
    order = np.argsort(np.take_along_axis(negated, columns, axis=1), axis=1, kind="stable")
    return np.take_along_axis(columns, order, axis=1)


def exclude_names(ranked: Sequence[Sequence[Name]], exclude: Sequence[Name | None],
                  k: int | None = None) -> list[list[Name]]:
    """Remove ``exclude[i]`` (``None``: nothing) from ranking ``i`` and cut each ranking to ``k`` names.

    This is how the CIRR reference is taken out of a ranking, whether the ranking came from
    ``rank_gallery`` or from an external index (ask that index for one name more than you need).
    """
    k = _check_k(k)
    _same_length({"ranked": ranked, "exclude": exclude})
    return [[name for name in _as_name_list(row, query) if name != drop][:k]
            for query, (row, drop) in enumerate(zip(ranked, exclude))]


def rank_gallery(similarity: Any, gallery_names: Sequence[Name], k: int | None = None,
                 exclude: Sequence[Name | None] | None = None) -> list[list[Name]]:
    """Per query, the gallery names by descending score (ties: lower gallery index first).

    ``k`` cuts each ranking (``None``: the whole gallery). ``exclude[i]``, when given and not
    ``None``, is removed from query ``i``'s ranking before the cut -- CIRR removes the reference.
    """
    k = _check_k(k)
    scores = _as_scores(similarity)
    index = _name_index(gallery_names, scores.shape[1])
    depth = k
    if exclude is not None:
        _same_length({"similarity rows": scores, "exclude": exclude})
        _require_known((name for name in exclude if name is not None), index, "excluded names")
        depth = None if k is None else k + 1  # one spare, in case the excluded name is among the top k
    names = _name_array(gallery_names)
    ranked = names[top_k_indices(scores, depth)].tolist()
    return ranked if exclude is None else exclude_names(ranked, exclude, k)


def rank_within(similarity: Any, gallery_names: Sequence[Name],
                candidates_per_query: Sequence[Sequence[Name]], k: int | None = None) -> list[list[Name]]:
    """Per query, rank only that query's candidate names (e.g. CIRR's img_set members but the reference).

    Same tie rule as ``rank_gallery``: equal scores go by the candidates' gallery index, not by
    their order in ``candidates_per_query``. Repeated candidates count once.
    """
    k = _check_k(k)
    scores = _as_scores(similarity)
    index = _name_index(gallery_names, scores.shape[1])
    _same_length({"similarity rows": scores, "candidates_per_query": candidates_per_query})
    rows = [_as_name_list(row, query) for query, row in enumerate(candidates_per_query)]
    _require_known((name for row in rows for name in row), index, "candidate names")
    names = _name_array(gallery_names)
    ranked = []
    for row_scores, row in zip(scores, rows):
        columns = np.array(sorted({index[name] for name in row}), dtype=np.intp)
        order = np.argsort(-row_scores[columns], kind="stable")[:k]
        ranked.append(names[columns[order]].tolist())
    return ranked


def _relevance(ranked: Sequence[Sequence[Name]], relevant: Sequence[Iterable[Name]], depth: int) -> np.ndarray:
    """(Q, depth) booleans: is the name at each rank relevant? Shared by recall and mAP.

    A ranking shorter than ``depth`` is accepted only if it holds every relevant name (a whole,
    small gallery); otherwise nobody can tell where the missing ones rank, and it is an error.
    Names repeated within the top ``depth`` are an error too (they would be counted twice).
    """
    n_queries = _same_length({"ranked": ranked, "relevant": relevant})
    if n_queries == 0:
        raise ValueError("no queries to evaluate")
    hits = np.zeros((n_queries, depth), dtype=bool)
    short, repeated = [], []
    for query, (row, wanted) in enumerate(zip(ranked, relevant)):
        top = _as_name_list(row, query)[:depth]
        wanted = set(_as_name_list(wanted, query))
        if len(top) < depth and not wanted <= set(top):
            short.append(query)
        if len(set(top)) < len(top):
            repeated.append(query)
        hits[query, :len(top)] = [name in wanted for name in top]
    if short:
        raise ValueError(f"rankings shorter than {depth} names lack a relevant name, whose rank is therefore "
                         f"unknown, for {_listing(short, 'queries')}. Fix: pass at least {depth} names per query "
                         "(when the reference is removed afterwards, ask the index for one more)")
    if repeated:
        raise ValueError(f"a name repeats within the top {depth} for {_listing(repeated, 'queries')}. "
                         "Fix: each gallery name may appear once per ranking")
    return hits
