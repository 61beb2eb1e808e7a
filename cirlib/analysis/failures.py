"""Where methods fail: each query's target rank under several methods, beside what the query asks for.

:func:`query_outcomes` builds one table row per query (category, reference, target, text, edit
types, causes; per method the target's rank, counted from 1 as in the retrieval grids (1: the top
result), and the top-k names), from each method's
(queries × gallery) scores. :func:`group_table` then gives recall and failure counts per edit type
or per cause (a query with several counts in each of its groups), :func:`failures` a method's
missed queries, :func:`failure_examples` one per group, and :func:`grid_inputs` the arguments of
``cirlib.viz.plots.retrieval_grid`` for them.
Ranks use ``cirlib.metrics``' rules (ties by lower gallery index; CIRR without its reference), so
``recall`` here equals the benchmark metric.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cirlib.analysis.edits import CAUSES, EditTypes
from cirlib.data import CIRR, FashionIQ
from cirlib.evaluation.evaluate import similarity
from cirlib.features.captions import CaptionedSplit
from cirlib.features.splits import SplitFeatures
from cirlib.metrics import top_k_indices
from cirlib.metrics.ranks import NOT_RANKED, target_ranks
from cirlib.weimocir.sweeps import ScoreGrid

Parts = SplitFeatures | Mapping[str, SplitFeatures]
"""One split, or FashionIQ's categories {category: split}."""
Scores = torch.Tensor | Mapping[str, torch.Tensor]
"""(queries, gallery) scores of one split, or {category: scores}."""


def _parts(value):
    return dict(value) if isinstance(value, Mapping) else {"": value}


def _each(value, function):
    """``function`` of one split, or {category: ``function`` of it} for FashionIQ's {category: split}."""
    return {c: function(v) for c, v in value.items()} if isinstance(value, Mapping) else function(value)


def method_scores(method: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], features: Parts) -> Scores:
    """A query-fusion method's cosine scores (fused queries against the normalised gallery)."""
    return _each(features, lambda f: similarity(method, f))


def weimocir_scores(split: CaptionedSplit | Mapping[str, CaptionedSplit], alpha: float, beta: float,
                    variant: str = "slides") -> Scores:
    """WeiMoCIR's scores at (α, β)."""
    return _each(split, lambda s: ScoreGrid(s, variant=variant).scores(alpha, beta))


def _columns(features: SplitFeatures, names: Sequence, missing: int | None) -> torch.Tensor:
    column = {name: i for i, name in enumerate(features.gallery_names)}
    if missing is None and any(n not in column for n in names):
        raise ValueError("some targets are not in the gallery; failure analysis needs every target retrievable")
    return torch.tensor([column.get(n, missing) for n in names], dtype=torch.int64)


def _ranks_and_tops(scores: torch.Tensor, features: SplitFeatures, exclude_reference: bool,
                    k: int) -> tuple[np.ndarray, list[list]]:
    if scores.shape != (len(features.target_names), len(features.gallery_names)):
        raise ValueError(f"scores of shape {tuple(scores.shape)} for {len(features.target_names)} queries and "
                         f"{len(features.gallery_names)} gallery images")
    scores = scores.float().cpu().clone()
    exclude = (_columns(features, features.reference_names, -1) if exclude_reference
               else torch.full((len(scores),), -1, dtype=torch.int64))
    ranks = target_ranks(scores, _columns(features, features.target_names, None)[:, None], exclude)[:, 0]
    rows = (exclude >= 0).nonzero()[:, 0]
    scores[rows, exclude[rows]] = float("-inf")
    names = features.gallery_names
    tops = [[names[i] for i in row] for row in top_k_indices(scores.numpy(), k)]
    return (ranks + (ranks != NOT_RANKED)).numpy(), tops  # 1-based; cirlib.metrics counts from 0


def query_outcomes(features: Parts, scores: Mapping[str, Scores], edit_types: EditTypes,
                   causes: Sequence[Sequence[str]], exclude_reference: bool, k: int = 5) -> pd.DataFrame:
    """One row per query: its description, and per method ``rank <method>`` (1-based: 1 is the top result, as
    in the grids) and ``top <method>`` (the first ``k`` gallery names). ``exclude_reference``: True for CIRR,
    False for FashionIQ."""
    parts = _parts(features)
    rows = [{"category": c, "reference": r, "target": t, "text": x}
            for c, f in parts.items() for r, t, x in zip(f.reference_names, f.target_names, f.query_texts)]
    if not len(edit_types) == len(causes) == len(rows):
        raise ValueError(f"{len(rows)} queries, {len(edit_types)} edit-type lists, {len(causes)} cause lists: "
                         "give one per query, in the features' order")
    frame = pd.DataFrame(rows)
    frame["edit types"], frame["causes"] = [list(t) for t in edit_types], [list(c) for c in causes]
    for method, method_scores_ in scores.items():
        by_part = _parts(method_scores_)
        if by_part.keys() != parts.keys():
            raise ValueError(f"{method}: scores for {sorted(by_part)}, features for {sorted(parts)}")
        results = [_ranks_and_tops(by_part[c], parts[c], exclude_reference, k) for c in parts]
        frame[f"rank {method}"] = np.concatenate([ranks for ranks, _ in results])
        frame[f"top {method}"] = [top for _, tops in results for top in tops]
    return frame


def _methods(frame: pd.DataFrame) -> list[str]:
    return [c[len("rank "):] for c in frame.columns if c.startswith("rank ")]


def group_table(frame: pd.DataFrame, by: str = "causes", k: int = 10) -> pd.DataFrame:
    """Per group of ``by`` ("causes" or "edit types"): the number of queries, each method's R@k (%) and
    failures (target not in the top k). A query counts once per group, however many of its edits fall
    in it. Causes keep their documented order; edit types go by size."""
    once = frame[by].map(lambda groups: list(dict.fromkeys(groups)))  # a query counts once per group
    exploded = frame.assign(**{by: once}).explode(by).dropna(subset=[by])
    table = exploded.groupby(by).size().rename("queries").to_frame()
    for method in _methods(frame):
        hit = exploded[f"rank {method}"] <= k
        table[f"R@{k} {method}"] = 100.0 * hit.groupby(exploded[by]).mean()
        table[f"failures {method}"] = (~hit).groupby(exploded[by]).sum()
    if by == "causes":
        return table.reindex([c for c in CAUSES if c in table.index])
    return table.sort_values("queries", ascending=False)


def failures(frame: pd.DataFrame, method: str, k: int = 10) -> pd.DataFrame:
    """The queries whose target ``method`` ranks below the top k (rank > k), worst first."""
    return frame[frame[f"rank {method}"] > k].sort_values(f"rank {method}", ascending=False)


def failure_examples(frame: pd.DataFrame, method: str, by: str = "causes", k: int = 10) -> pd.DataFrame:
    """One failed query per group of ``by`` (its worst-ranked failure not already shown for another
    group), with the group in a ``group`` column; groups in :func:`group_table`'s order."""
    missed = failures(frame, method, k)
    chosen, groups = [], []
    for group in group_table(frame, by, k).index:
        candidates = [i for i in missed.index if group in missed.at[i, by] and i not in chosen]
        if candidates:
            chosen.append(candidates[0])
            groups.append(group)
    return missed.loc[chosen].assign(group=groups)


def grid_inputs(rows: pd.DataFrame, method: str, path_of: Callable[[object], Path]) -> dict:
    """Keyword arguments of ``cirlib.viz.plots.retrieval_grid`` for ``rows``: the reference and text
    (after the row's ``group``, if there is that column), the method's top names, the target marked
    where it appears, and the target itself with its rank."""
    texts = ([f"[{g}] {t}" for g, t in zip(rows["group"], rows["text"])] if "group" in rows else list(rows["text"]))
    return {"queries": [(path_of(r.reference), text) for r, text in zip(rows.itertuples(), texts)],
            "results": [[path_of(n) for n in top] for top in rows[f"top {method}"]],
            "correct": [[n == r.target for n in top] for r, top in zip(rows.itertuples(), rows[f"top {method}"])],
            "targets": [(path_of(r.target), f"target: #{rank}")
                        for r, rank in zip(rows.itertuples(), rows[f"rank {method}"])]}


def synth_image_path(benchmark: Path | str, dataset: str, split: str = "val") -> Callable[[object], Path]:
    """Image name -> file for ``synth-fashioniq`` (any category) or ``synth-cirr`` (``split``)."""
    if dataset == "synth-fashioniq":
        return FashionIQ(Path(benchmark) / dataset).image_path
    if dataset == "synth-cirr":
        reader = CIRR(Path(benchmark) / dataset)
        return lambda name: reader.image_path(name, split)
    raise ValueError(f"dataset must be synth-fashioniq or synth-cirr, got {dataset!r}")
