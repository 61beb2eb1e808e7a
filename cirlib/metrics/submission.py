"""Test-server submission files for CIRR and CIRCO, validated before anything is written.

The evaluation servers reject a file with a repeated or missing query id, a list of the wrong
length, or a name listed twice -- and say little about which query was at fault. The writers here
check all of that first and raise one ``ValueError`` naming the offending ids and the fix; a file
is only ever replaced whole, and gets the mode the umask gives (``cirlib.util.atomic.write_json``).

Query ids become JSON string keys, written as ``str(int(id))`` whatever integer type they come in (a
torch or numpy scalar would otherwise give the key ``"tensor(12063)"``); names and ids in the lists are
written as strings too, as in SEARLE's submission files: a name as it is, an integer id (CIRCO's COCO
ids) as ``str(int(id))``.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cirlib.metrics.ranking import Name, _as_name_list, _duplicates, _listing, _same_length
from cirlib.util.atomic import write_json

CIRR_TOP_K = 50
CIRR_SUBSET_TOP_K = 3
CIRCO_TOP_K = 50


def _id_text(value: Any) -> str | None:
    """``str(int(value))`` for an integer of any type (int, numpy or 0-d torch integer, a string of digits), else
    None. Floats and bools are no ids: 12063.7 must not become "12063"."""
    if isinstance(value, str):
        return str(int(value)) if value.strip().lstrip("+-").isdigit() else None
    if isinstance(value, bool):
        return None
    try:
        return str(operator.index(value))
    except TypeError:
        return None


def _query_key(label: str, value: Any) -> str:
    """A query id as the servers' JSON key, or a ValueError naming it."""
    key = _id_text(value)
    if key is None:
        raise ValueError(f"{label} submission not written: query id {value!r} is not an integer "
                         "(fix: pass the split's own ids: CIRR pairid, CIRCO id)")
    return key


def _name_text(name: Name) -> str:
    """A gallery name as written: a string as it is, an integer id of any type as ``str(int(id))``."""
    return name if isinstance(name, str) else _id_text(name) or str(name)


def _validated(label: str, query_ids: Sequence[Any], lists: Sequence[Sequence[Name]], length: int,
               expected_ids: Sequence[Any] | None) -> dict[str, list[str]]:
    """{query id: names} as JSON-ready strings, or a ValueError listing every problem with its fix."""
    _same_length({"query ids": query_ids, label: lists})
    keys = [_query_key(label, query_id) for query_id in query_ids]
    rows = [[_name_text(name) for name in _as_name_list(row, query)] for query, row in enumerate(lists)]
    problems = []
    repeated_ids = _duplicates(keys)
    if repeated_ids:
        problems.append(f"{_listing(repeated_ids, 'query ids appear more than once')} "
                        "(fix: give each query once, with its own ranking)")
    if expected_ids is not None:
        expected = dict.fromkeys(_query_key(label, query_id) for query_id in expected_ids)
        given = dict.fromkeys(keys)
        missing = [key for key in expected if key not in given]
        unexpected = [key for key in given if key not in expected]
        if missing:
            problems.append(f"{_listing(missing, 'expected query ids are missing')} "
                            "(fix: rank every query of the test split; the server needs all of them)")
        if unexpected:
            problems.append(f"{_listing(unexpected, 'query ids are not in the expected set')} "
                            "(fix: check the split -- val and test ids differ -- and drop the rest)")
    wrong_length = list(dict.fromkeys(f"{key} ({len(row)} names)" for key, row in zip(keys, rows)
                                      if len(row) != length))
    if wrong_length:
        problems.append(f"{_listing(wrong_length, f'query ids lack exactly {length} names')} "
                        f"(fix: cut or rank to exactly {length}; a gallery smaller than that cannot be submitted)")
    repeated_names = list(dict.fromkeys(key for key, row in zip(keys, rows) if len(set(row)) < len(row)))
    if repeated_names:
        problems.append(f"{_listing(repeated_names, 'query ids list a name twice')} "
                        "(fix: each gallery image may appear once per ranking)")
    if problems:
        raise ValueError(f"{label} submission not written: " + "; ".join(problems))
    return dict(zip(keys, rows))


def write_cirr_submission(out_dir_or_prefix: str | os.PathLike[str], pair_ids: Sequence[Any],
                          top50_names: Sequence[Sequence[Name]], subset_top3_names: Sequence[Sequence[Name]],
                          expected_pair_ids: Sequence[Any] | None = None) -> tuple[Path, Path]:
    """Write CIRR's two test-server files; return (recall path, recall_subset path).

    An existing folder gets ``cirr_recall.json`` and ``cirr_recall_subset.json``; any other path is
    a prefix (a trailing ``.json`` is dropped): ``runs/x`` gives ``runs/x_recall.json`` and ``runs/x_recall_subset.json``. Contents:
    ``{"version": "rc2", "metric": "recall", "<pairid>": [50 names]}`` and the same with
    ``"recall_subset"`` and 3 names. The references must already be left out of both rankings
    (``cirr_rankings`` does that). Pass ``expected_pair_ids`` (all test1 pair ids) to catch
    missing queries before the server does.
    """
    recall = _validated("CIRR recall", pair_ids, top50_names, CIRR_TOP_K, expected_pair_ids)
    subset = _validated("CIRR recall_subset", pair_ids, subset_top3_names, CIRR_SUBSET_TOP_K, expected_pair_ids)
    base = Path(out_dir_or_prefix)
    if base.is_dir():
        base = base / "cirr"
    elif base.suffix == ".json":
        base = base.with_suffix("")
    recall_path = base.with_name(f"{base.name}_recall.json")
    subset_path = base.with_name(f"{base.name}_recall_subset.json")
    return (write_json(recall_path, {"version": "rc2", "metric": "recall"} | recall, indent=None),
            write_json(subset_path, {"version": "rc2", "metric": "recall_subset"} | subset, indent=None))


def write_circo_submission(path: str | os.PathLike[str], query_ids: Sequence[Any], top50_ids: Sequence[Sequence[Name]],
                           expected_query_ids: Sequence[Any] | None = None) -> Path:
    """Write CIRCO's test-server file ``{"<query id>": [50 image ids]}`` (no version key); return its path.

    Pass ``expected_query_ids`` (all test query ids) to catch missing queries before the server does.
    """
    return write_json(path, _validated("CIRCO", query_ids, top50_ids, CIRCO_TOP_K, expected_query_ids), indent=None)
