"""One evaluation protocol per benchmark: what FashionIQ, CIRR and CIRCO differ in, in one place.

Code that needs a dataset's cut-offs, table columns, selection metric or reference rule asks
``protocol(name)`` instead of comparing dataset strings; the conventions are those of
``../shared/reference/formats-and-methods.md`` (CLIP4Cir for FashionIQ and CIRR, SEARLE for CIRCO).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from cirlib.data import FashionIQ
from cirlib.metrics.recall import CIRR_MEANS
from cirlib.util.errors import ConfigError

REFERENCE_RULES = ("kept", "removed", "kept by default")
"""Whether a query's reference image stays in its ranking: always, never, or unless ``exclude_reference`` is set."""


def map_columns(values: Mapping[int, float]) -> dict[str, float]:
    """{K: mAP@K} (``cirlib.metrics.circo_map``) as {"mAP@K": value}: the names of CIRCO's table columns."""
    return {f"mAP@{k}": value for k, value in values.items()}


def _map_names(ks: Iterable[int]) -> list[str]:
    return list(map_columns(dict.fromkeys(ks, 0.0)))


def require_metric(metric: str, available: Iterable[str], source: str, field: str = "metric",
                   among: str = "its metrics") -> None:
    """Raise a one-line ConfigError unless ``metric`` is one of ``available``: the one check that a selection
    metric or table column names something measured (``source`` and ``field`` say where the name came from)."""
    names = list(available)
    if metric not in names:
        raise ConfigError(source, field, metric, f"one of {among}: {', '.join(names)}")


@dataclass(frozen=True)
class Protocol:
    """A benchmark's evaluation conventions (val split; metrics in percent)."""

    name: str                        # the dataset name used in configs, results and sweeps
    label: str                       # how tables and plots write it
    ks: tuple[int, ...]              # the cut-offs of R@K (FashionIQ, CIRR) or mAP@K (CIRCO)
    columns: tuple[str, ...]         # every reported metric: the full results table
    summary_columns: tuple[str, ...]  # the short table of the README and the WeiMoCIR report
    select_by: str                   # the metric models and (α, β) cells are selected by
    reference: str                   # one of REFERENCE_RULES
    categories: tuple[str, ...] = ()  # FashionIQ: evaluated per category, then averaged
    subset_ks: tuple[int, ...] = ()   # CIRR: cut-offs of Recall_subset@K
    several_targets: bool = False     # CIRCO: several correct images per query, scored by mAP
    training_split: bool = True       # whether a fusion can be trained on the dataset

    @property
    def has_categories(self) -> bool:
        return bool(self.categories)

    @property
    def has_subset(self) -> bool:
        return bool(self.subset_ks)

    def removes_reference(self, exclude_reference: bool = False) -> bool:
        """Whether the reference is taken out of each query's ranking; ``exclude_reference`` is CIRCO's flag."""
        return self.reference == "removed" or (self.reference == "kept by default" and exclude_reference)

    def metric_names(self, categories: Sequence[str] | None = None) -> list[str]:
        """The keys an evaluation of this dataset returns (FashionIQ: over ``categories``, default all), known
        before any evaluation, so that a config's selection metric is checked when it is loaded."""
        if self.several_targets:
            return _map_names(self.ks)
        if self.has_categories:
            chosen = self.categories if categories is None else categories
            return [f"{c} R@{k}" for c in chosen for k in self.ks] + [f"avg R@{k}" for k in self.ks] + ["avg"]
        return [f"R@{k}" for k in self.ks] + [f"Rsubset@{k}" for k in self.subset_ks] + ["Avg", *CIRR_MEANS]


FASHIONIQ = Protocol(
    name="fashioniq", label="FashionIQ", ks=(10, 50),
    columns=(*(f"{c} R@{k}" for c in FashionIQ.CATEGORIES for k in (10, 50)), "avg R@10", "avg R@50", "avg"),
    summary_columns=("avg R@10", "avg R@50", "avg"), select_by="avg", reference="kept",
    categories=FashionIQ.CATEGORIES)
"""Per category R@10 and R@50 over that category's gallery, the reference kept; selection by
avg = (mean R@10 + mean R@50) / 2 (CLIP4Cir)."""

CIRR = Protocol(
    name="cirr", label="CIRR", ks=(1, 5, 10, 50),
    columns=("R@1", "R@5", "R@10", "R@50", "Rsubset@1", "Rsubset@2", "Rsubset@3", "Avg"),
    summary_columns=("R@1", "R@5", "R@10", "R@50", "Rsubset@1", "Avg"), select_by="Avg", reference="removed",
    subset_ks=(1, 2, 3))
"""R@{1,5,10,50} with the reference removed, Recall_subset@{1,2,3} within the img_set; selection by
Avg = (R@5 + Rsubset@1) / 2."""

CIRCO = Protocol(
    name="circo", label="CIRCO", ks=(5, 10, 25, 50),
    columns=tuple(_map_names((5, 10, 25, 50))), summary_columns=tuple(_map_names((5, 10, 25, 50))),
    select_by="mAP@10", reference="kept by default", several_targets=True, training_split=False)
"""mAP@{5,10,25,50}, AP@K divided by min(K, |gt|); the reference kept unless asked (SEARLE); no training split."""

PROTOCOLS = {p.name: p for p in (FASHIONIQ, CIRR, CIRCO)}
"""{dataset name: protocol}, in the order the benchmarks are reported."""


def protocol(name: str) -> Protocol:
    """The protocol of dataset ``name``; an unknown name is a ValueError that lists the valid ones."""
    if name not in PROTOCOLS:
        raise ValueError(f"unknown dataset {name!r}: expected one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]
