"""The MoE gating study: which routing options make the experts specialise by edit type, and at what cost in recall.

Each variant is a base MoE config (``configs/synth_moe_<dataset>.yaml``) with some :class:`~cirlib.fusion.moe.
MoECombiner` options changed. Every variant is trained with every seed (:func:`~cirlib.experiments.jobs.run_fusion_job`
in ``<runs>/<dataset folder>/<variant>-<hash of its settings>/seed<k>``; a finished run is reused) and its best
checkpoint is analysed on the val split (:func:`analyse_routing`): the dataset's recall, how evenly the router
spreads the queries
(:func:`~cirlib.analysis.gating.balance_summary`), NMI(top expert, edit type) and NMI(top expert, cause), the
recall with each expert switched off, and the mean router weight per edit type. :func:`run_moe_study` writes
``<results>/moe_study.json`` (the config first), ``moe_study.md`` (mean ± std over seeds) and
``moe_study_routing.png`` (per-edit-type routing of seed 0).

    cirlib study --config configs/studies/moe_gating.yaml
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch

from cirlib.analysis.edits import query_groups
from cirlib.analysis.gating import (
    balance_summary,
    expert_off_method,
    router_weights_by_edit_type,
    routing_weights,
    top_expert_cause_nmi,
    top_expert_edit_type_nmi,
)
from cirlib.encoders.loading import config_encoder
from cirlib.evaluation.evaluate import evaluate_split
from cirlib.experiments.job_features import ValFeatures, val_features
from cirlib.experiments.jobs import fusion_method, load_job_config, run_fusion_job
from cirlib.features import FeatureCache
from cirlib.features.splits import SplitFeatures
from cirlib.fusion import option_types
from cirlib.fusion.moe import MoECombiner
from cirlib.train.stage2 import BEST, FusionTrainConfig, load_trained_fusion
from cirlib.util.atomic import save_figure, write_json, write_text
from cirlib.util.config import check_mapping, json_sha256, setting, validate
from cirlib.util.errors import ConfigError
from cirlib.util.tables import markdown_table

VARIANTS: dict[str, dict] = {
    "default": {},                                                   # the faithful design: top-2, no auxiliary loss
    "importance-0.1": {"load_balance_weight": 0.1},                  # Shazeer et al.'s importance loss
    "importance-1": {"load_balance_weight": 1.0},
    "switch-0.01": {"load_balance_weight": 0.01, "balance_loss": "switch"},  # the Switch Transformer's loss
    "switch-0.1": {"load_balance_weight": 0.1, "balance_loss": "switch"},
    "noisy-1": {"router_noise": 1.0},                                # noisy top-k gating, noise std 1
    "top1": {"top_k": 1},
    "top1-switch-0.01": {"top_k": 1, "load_balance_weight": 0.01, "balance_loss": "switch"},  # the Switch Transformer
    "soft": {"routing": "soft"},                                     # every expert runs, softmax weights
    "zloss-0.001": {"z_loss_weight": 0.001},                         # ST-MoE's router z-loss
}
"""The study's variants: {name: MoECombiner options on top of the base config's}."""

RECALL = {"fashioniq": ("avg R@10", "avg R@50"), "cirr": ("R@1", "R@10", "Avg")}
"""The recall columns the study reports per dataset."""
KNOCKOUT = {"fashioniq": "avg R@10", "cirr": "R@10"}
"""The metric reported with each expert switched off."""
_NAME = re.compile(r"[A-Za-z0-9._+-]+")


@dataclass
class MoEStudyConfig:
    """One gating study (``cirlib study --config``): base configs, variants, seeds, where runs and results go."""

    kind: str = setting("moe_study", choices=("moe_study",))
    configs: list = setting(factory=lambda: ["configs/synth_moe_fashioniq.yaml", "configs/synth_moe_cirr.yaml"])
    variants: dict = setting(factory=lambda: dict(VARIANTS))
    seeds: list = setting(factory=lambda: [0, 1, 2])
    epochs: int | None = setting(None, minimum=1)  # None: the base configs' own
    runs: str = "runs/moe_study"
    results: str = "results/moe_study"

    def __post_init__(self) -> None:
        validate(self)
        owner = type(self).__name__
        for name in self.variants:
            if not _NAME.fullmatch(str(name)):
                raise ConfigError(owner, f"variants.{name}", name, "a name of letters, digits and . _ + - (it names "
                                                                   "a run folder)")
        self.variants = {name: check_mapping(owner, f"variants.{name}", options or {}, option_types("moe"))
                         for name, options in self.variants.items()}
        if not self.seeds or not all(isinstance(s, int) and s >= 0 for s in self.seeds):
            raise ConfigError(owner, "seeds", self.seeds, "a list of one or more integers >= 0")

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def study_runs(config: MoEStudyConfig) -> list[tuple[str, FusionTrainConfig]]:
    """(variant, training config) of every run, each built and validated before any work starts; seed by seed, so
    that a partial study already covers every variant."""
    bases = []
    for path in config.configs:
        _, base = load_job_config(path)
        if base.fusion != "moe":
            raise ConfigError(str(path), "fusion", base.fusion, "moe (a gating study needs an MoE config)")
        bases.append(base)
    epochs = {"epochs": config.epochs} if config.epochs is not None else {}
    runs = []
    for seed in config.seeds:
        for base in bases:
            for name, options in config.variants.items():
                run = dataclasses.replace(base, fusion_options={**base.fusion_options, **options}, **epochs)
                key = json_sha256({**run.to_json(), "out": None})[:8]  # a changed setting never reuses another's run
                folder = Path(config.runs) / Path(base.data_root).name / f"{name}-{key}" / f"seed{seed}"
                runs.append((name, dataclasses.replace(run, seed=seed, out=str(folder))))
    return runs


@dataclass
class RoutingAnalysis:
    """What one trained MoE does on a val split (see the module docstring)."""

    recall: dict[str, float]
    balance: dict[str, float]
    nmi_edit_type: float
    nmi_cause: float
    knockout: list[float]          # KNOCKOUT metric with expert e switched off, for each e
    edit_types: list[str]
    by_edit_type: np.ndarray       # (edit types, experts) mean router weight

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "by_edit_type": self.by_edit_type.tolist()}

    def summary(self, dataset: str) -> dict[str, float]:
        """The flat numbers the study's tables show: recall, balance, NMIs, and the two largest knockout costs (the
        recall lost with the most and the second most important expert switched off)."""
        full, drops = self.recall[KNOCKOUT[dataset]], sorted(self.knockout)
        return {**self.recall, **self.balance, "NMI edit type": self.nmi_edit_type, "NMI cause": self.nmi_cause,
                "largest knockout cost": full - drops[0] if drops else float("nan"),
                "second knockout cost": full - drops[1] if len(drops) > 1 else float("nan")}


def _queries(features: ValFeatures) -> tuple[torch.Tensor, torch.Tensor]:
    """(reference, text) features of every val query, FashionIQ's categories concatenated in order."""
    parts = list(features.values()) if isinstance(features, Mapping) else [features]
    return torch.cat([p.reference for p in parts]), torch.cat([p.text for p in parts])


def query_texts(features: ValFeatures) -> dict[str, list[str]] | list[str]:
    """The queries' texts as :func:`~cirlib.analysis.edits.query_groups` takes them."""
    if isinstance(features, SplitFeatures):
        return features.query_texts
    return {category: split.query_texts for category, split in features.items()}


def analyse_routing(model: MoECombiner, dataset: str, features: ValFeatures, types: Sequence[Sequence[str]],
                    causes: Sequence[Sequence[str]]) -> RoutingAnalysis:
    """Recall, balance, NMIs, knockouts and per-edit-type routing of ``model`` on the val ``features``."""
    metrics = evaluate_split(dataset, features, fusion_method(model))
    weights, _ = routing_weights(model, *_queries(features))
    names, table = router_weights_by_edit_type(weights, [list(t) for t in types])
    knockout = [evaluate_split(dataset, features, expert_off_method(model, e))[KNOCKOUT[dataset]]
                for e in range(model.num_experts)] if model.num_experts > model.top_k else []
    return RoutingAnalysis(recall={m: metrics[m] for m in RECALL[dataset]}, balance=balance_summary(weights),
                           nmi_edit_type=top_expert_edit_type_nmi(weights, [list(t) for t in types]),
                           nmi_cause=top_expert_cause_nmi(weights, causes), knockout=knockout, edit_types=names,
                           by_edit_type=table)


def run_moe_study(config: MoEStudyConfig, progress: bool = True) -> dict:
    """Train (or reuse) every run, analyse each, write the results folder; return the JSON written."""
    runs = study_runs(config)
    context: dict[str, tuple] = {}
    records = []
    for name, run in runs:
        if run.dataset not in context:  # val features and query groups, once per dataset
            features = val_features(config_encoder(run), FeatureCache(run.cache, progress=progress), run)
            context[run.dataset] = (features, *query_groups(run.dataset, run.data_root, query_texts(features)))
        result = run_fusion_job(run, resume=True, progress=progress, verbose=False)
        model, _ = load_trained_fusion(Path(run.out) / BEST)
        analysis = analyse_routing(model, run.dataset, *context[run.dataset])
        records.append({"dataset": run.dataset, "variant": name, "seed": run.seed, "out": run.out,
                        "best epoch": result["best"]["epoch"],
                        "row": {**analysis.summary(run.dataset), "train seconds": result["last"]["seconds"]},
                        "analysis": analysis.to_json()})
        if progress:
            print(f"{run.dataset} {name} seed {run.seed}: {records[-1]['row']}", flush=True)
    summary = {"config": config.to_json(), "runs": records,
               "tables": {"summary": summary_table(records), **study_tables(records)}}
    out = Path(config.results)
    write_json(out / "moe_study.json", summary)
    write_text(out / "moe_study.md", "\n\n".join(summary["tables"].values()) + "\n")
    save_figure(out / "moe_study_routing.png", routing_figure(records))
    return summary


FRACTIONS = frozenset({"top share", "top entropy", "importance CV", "NMI edit type", "NMI cause"})
"""Columns in [0, 1] or near it, shown with three decimals (recall, costs and seconds with one)."""


def _mean_std(values: Sequence[float], column: str) -> str:
    values = np.asarray(values, dtype=float)
    spread = values.std(ddof=1) if len(values) > 1 else 0.0
    digits = 3 if column in FRACTIONS else 1
    return f"{values.mean():.{digits}f} ± {spread:.{digits}f}"


def study_tables(records: Sequence[Mapping]) -> dict[str, str]:
    """{dataset: markdown table}, one row per variant, mean ± sample std over its seeds."""
    tables = {}
    for dataset in dict.fromkeys(r["dataset"] for r in records):
        rows = [r for r in records if r["dataset"] == dataset]
        columns = list(rows[0]["row"])
        cells = ([variant, *(_mean_std([r["row"][c] for r in rows if r["variant"] == variant], c) for c in columns)]
                 for variant in dict.fromkeys(r["variant"] for r in rows))
        tables[dataset] = markdown_table(["variant", *columns], cells, f"{dataset} (val, best epoch; mean ± std over "
                                         f"seeds {sorted({r['seed'] for r in rows})})")
    return tables

SUMMARY_COLUMNS = ("top share", "NMI edit type", "NMI cause", "largest knockout cost", "train seconds")
"""The columns the one-line-per-variant summary shows for every dataset, after each dataset's headline recall."""


def summary_table(records: Sequence[Mapping]) -> str:
    """One markdown row per variant, both datasets side by side ("FIQ / CIRR" in each cell): the headline recall
    (:data:`KNOCKOUT`), then :data:`SUMMARY_COLUMNS`, each mean ± sample std over the seeds."""
    datasets = list(dict.fromkeys(r["dataset"] for r in records))

    def cell(variant: str, column: str | None) -> str:
        return " / ".join(_mean_std([r["row"][column or KNOCKOUT[d]] for r in records
                                     if r["variant"] == variant and r["dataset"] == d], column or "recall")
                          for d in datasets)
    rows = ([variant, cell(variant, None), *(cell(variant, c) for c in SUMMARY_COLUMNS)]
            for variant in dict.fromkeys(r["variant"] for r in records))
    title = (f"all datasets ({' / '.join(datasets)}; val, best epoch; mean ± std over seeds "
             f"{sorted({r['seed'] for r in records})})")
    return markdown_table(["variant", " / ".join(KNOCKOUT[d] for d in datasets), *SUMMARY_COLUMNS], rows, title)

def routing_figure(records: Sequence[Mapping], seed: int | None = None) -> plt.Figure:
    """Mean router weight per edit type and expert: one heatmap per (variant, dataset), of ``seed`` (default: the
    smallest seed run)."""
    seed = min(r["seed"] for r in records) if seed is None else seed
    chosen = [r for r in records if r["seed"] == seed]
    datasets = list(dict.fromkeys(r["dataset"] for r in chosen))
    variants = list(dict.fromkeys(r["variant"] for r in chosen))
    figure, axes = plt.subplots(len(variants), len(datasets), figsize=(5.5 * len(datasets), 2.6 * len(variants)),
                                squeeze=False, layout="constrained")
    for record in chosen:
        ax = axes[variants.index(record["variant"]), datasets.index(record["dataset"])]
        analysis = record["analysis"]
        table = np.asarray(analysis["by_edit_type"])
        sns.heatmap(table, vmin=0, vmax=1, cmap="viridis", ax=ax, yticklabels=analysis["edit_types"],
                    xticklabels=[f"e{e}" for e in range(table.shape[1])], cbar=False, annot=True, fmt=".2f",
                    annot_kws={"fontsize": 6})
        ax.tick_params(labelsize=7)
        ax.set_title(f"{record['dataset']} · {record['variant']} · NMI {analysis['nmi_edit_type']:.3f}", fontsize=8)
    figure.suptitle(f"Mean router weight per edit type (seed {seed})")
    return figure
