"""Evaluate query-fusion methods on the three benchmarks' evaluation splits, and print tables.

A method is any function ``(image_features, text_features) -> normalised queries``. Retrieval goes
through ``cirlib.index``: the split's L2-normalised gallery in an exact float32 index, searched for
each query's top K (K = the largest cut-off reported, 50), then scored from those ranked lists with
``cirlib.metrics``. The numbers equal the similarity-matrix metrics (``similarity`` below with
``fashioniq_recall`` / ``cirr_recall`` / ``circo_map``; tested), with the same tie rule, without ever
holding a (queries, gallery) matrix. CIRR's Recall_subset ranks only the 5 img_set members of each
query, so it scores those few pairs directly. A test split (CIRR test1, CIRCO test: no public targets) is
refused with a one-line error that says to write a submission instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from cirlib.data import FashionIQ
from cirlib.encoders.loading import Encoder
from cirlib.features import FeatureCache, circo_features, cirr_features, fashioniq_features
from cirlib.features.splits import SplitFeatures
from cirlib.index import ExactIndex, Index
from cirlib.metrics import (
    circo_map_from_rankings,
    cirr_recall_from_rankings,
    fashioniq_summary,
    recall_at_k,
    top_k_indices,
)
from cirlib.metrics.protocols import CIRCO, CIRR, FASHIONIQ, PROTOCOLS, map_columns, protocol
from cirlib.metrics.ranking import Name, _name_array, _require_known
from cirlib.metrics.recall import cirr_means
from cirlib.util import tables
from cirlib.util.errors import CirlibError

Method = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def similarity(method: Method, features: SplitFeatures) -> torch.Tensor:
    """(Q, G) cosine similarity of the fused queries to the gallery: the dense reference for small splits."""
    return method(features.reference, features.text) @ F.normalize(features.gallery, dim=-1).T


def gallery_index(features: SplitFeatures) -> ExactIndex:
    """The split's L2-normalised gallery in an exact float32 index; ids are gallery positions."""
    index = ExactIndex(features.gallery.shape[1], metric="ip", dtype=torch.float32)
    index.add(F.normalize(features.gallery.float(), dim=-1))
    return index


def ranked_names(index: Index, queries: torch.Tensor, gallery_names: Sequence[Name], k: int,
                 exclude: Sequence[Name | None] | None = None) -> list[list[Name]]:
    """Each query's top-k gallery names from ``index`` (ids = positions in ``gallery_names``).

    ``exclude[i]`` (a name, or None) is left out of query i's list; names outside the gallery
    exclude nothing. Rankings are shorter than k only when the gallery is.
    """
    position = {name: column for column, name in enumerate(gallery_names)}
    excluded = None if exclude is None else [position.get(name) for name in exclude]
    _, ids = index.search(queries, k, exclude=excluded)
    names = _name_array(gallery_names)
    return [names[row[row >= 0]].tolist() for row in ids]


def subset_rankings(queries: torch.Tensor, gallery: torch.Tensor, features: SplitFeatures,
                    k: int) -> list[list[Name]]:
    """CIRR's Recall_subset rankings: each query's img_set members but its reference, top k by score.

    ``gallery`` holds the normalised gallery rows. Ties rank by lower gallery index, as
    ``cirlib.metrics.rank_within`` does on a full matrix.
    """
    position = {name: column for column, name in enumerate(features.gallery_names)}
    members = [[name for name in row if name != reference]
               for row, reference in zip(features.extra["img_set_members"], features.reference_names)]
    _require_known((name for row in members for name in row), position, "img_set members")
    rows = [sorted({position[name] for name in row}) for row in members]
    width = max(map(len, rows), default=0)
    if width == 0:
        return [[] for _ in rows]
    columns = torch.full((len(rows), width), -1, dtype=torch.long)
    for query, row in enumerate(rows):
        columns[query, :len(row)] = torch.tensor(row, dtype=torch.long)
    scores = torch.einsum("qd,qmd->qm", queries.float(), gallery[columns.clamp(min=0)])
    scores[columns < 0] = float("-inf")
    order = torch.from_numpy(top_k_indices(scores.numpy(), k))
    names = _name_array(features.gallery_names)
    return [names[row[row >= 0].numpy()].tolist() for row in columns.gather(1, order)]


def require_targets(features: SplitFeatures, split: str, writer: str, server: str) -> None:
    """Refuse, in one line, a split whose queries have no targets (a test split): it can only be submitted."""
    if features.target_names is None or any(target is None for target in features.target_names):
        raise CirlibError(f"{split} has no targets (a test split): write a submission with "
                          f"cirlib.metrics.{writer} and upload it to the {server}, or evaluate on the val split")


def evaluate_fashioniq(split_features: Mapping[str, SplitFeatures], method: Method) -> dict[str, float]:
    """The FashionIQ row (per category and average R@10/R@50); the reference stays in the gallery."""
    per_category = {}
    for category, f in split_features.items():
        _require_known(f.target_names, set(f.gallery_names), "targets")
        ranked = ranked_names(gallery_index(f), method(f.reference, f.text), f.gallery_names, max(FASHIONIQ.ks))
        per_category[category] = recall_at_k(ranked, f.target_names, FASHIONIQ.ks)
    return fashioniq_summary(per_category)


def evaluate_cirr(features: SplitFeatures, method: Method) -> dict[str, float]:
    """CIRR R@{1,5,10,50} with the reference removed, Rsubset@{1,2,3}, Avg = (R@5 + Rsubset@1) / 2, and the
    arithmetic, harmonic and geometric mean of those seven recalls (CLIP4Cir's model selection on CIRR)."""
    require_targets(features, "the CIRR split (test1)", "write_cirr_submission", "CIRR evaluation server")
    _require_known(features.target_names, set(features.gallery_names), "targets")
    queries = method(features.reference, features.text)
    index = gallery_index(features)
    ranked = ranked_names(index, queries, features.gallery_names, max(CIRR.ks), exclude=features.reference_names)
    subset = subset_rankings(queries, index.features, features, max(CIRR.subset_ks))
    recalls = cirr_recall_from_rankings(ranked, subset, features.reference_names, features.target_names,
                                        CIRR.ks, CIRR.subset_ks)
    return recalls | cirr_means(recalls)


def evaluate_circo(features: SplitFeatures, method: Method) -> dict[int, float]:
    """CIRCO {K: mAP@K}; the reference stays in the ranking (SEARLE's protocol)."""
    require_targets(features, "the CIRCO split (test)", "write_circo_submission", "CIRCO evaluation server")
    gt_lists = features.extra["gt_img_ids"]
    _require_known((name for gt in gt_lists for name in gt), set(features.gallery_names), "ground-truth ids")
    ranked = ranked_names(gallery_index(features), method(features.reference, features.text),
                          features.gallery_names, max(CIRCO.ks))
    return circo_map_from_rankings(ranked, gt_lists, CIRCO.ks)


def benchmark_features(encoder: Encoder, cache: FeatureCache, benchmark: Path | str, on_missing: str = "error"):
    """Features of the val splits of synth-fashioniq (per category), synth-cirr and synth-circo. ``on_missing="skip"``
    drops the queries that need an absent image (each split's ``missing`` lists them), so recall is over fewer
    queries than the paper's (see :mod:`cirlib.features.splits`)."""
    benchmark = Path(benchmark)
    fiq = {c: fashioniq_features(encoder, cache, benchmark / "synth-fashioniq", c, "val", "synth-fashioniq",
                                 on_missing) for c in FashionIQ.CATEGORIES}
    cirr = cirr_features(encoder, cache, benchmark / "synth-cirr", "val", "synth-cirr", on_missing)
    circo = circo_features(encoder, cache, benchmark / "synth-circo", "val", "synth-circo", on_missing)
    return fiq, cirr, circo


def evaluate_split(dataset: str, features, method: Method) -> dict[str, float]:
    """The metrics of ``dataset`` by name (its protocol's): FashionIQ's {category: features}, CIRR's or CIRCO's
    (``map_columns``: "mAP@K") features."""
    rules = protocol(dataset)
    if rules.has_categories:
        return evaluate_fashioniq(features, method)
    if rules.has_subset:
        return evaluate_cirr(features, method)
    return map_columns(evaluate_circo(features, method))


def evaluate_methods(features, methods: Mapping[str, Method]) -> dict[str, dict[str, dict]]:
    """{dataset: {method: metrics}} on the features from :func:`benchmark_features` (FashionIQ's, CIRR's, CIRCO's)."""
    return {dataset: {name: evaluate_split(dataset, split, m) for name, m in methods.items()}
            for dataset, split in zip(PROTOCOLS, features)}


def _rows(results: Mapping[str, Mapping[str, float]], columns: Sequence[str], digits: int) -> list[list[str]]:
    return [[name, *(f"{metrics[c]:.{digits}f}" for c in columns)] for name, metrics in results.items()]


def format_table(results: Mapping[str, Mapping[str, float]], columns: Sequence[str], title: str) -> str:
    """A fixed-width table: one row per method, the chosen metric columns (two decimals)."""
    return tables.text_table(["method", *columns], _rows(results, columns, 2), title)


def markdown_table(results: Mapping[str, Mapping[str, float]], columns: Sequence[str], title: str) -> str:
    """The same rows as :func:`format_table`, as a markdown table under a bold title (for READMEs and reports)."""
    return tables.markdown_table(["method", *columns], _rows(results, columns, 1), f"**{title}**")


def format_results(results: dict[str, dict[str, dict]]) -> str:
    """The tables of :func:`evaluate_methods`: every dataset's ``Protocol.columns``."""
    units = {CIRCO.name: "mAP %"}
    return "\n\n".join(format_table(results[p.name], p.columns,
                                     f"synth-{p.name} (val), {units.get(p.name, 'recall %')}")
                        for p in PROTOCOLS.values())
