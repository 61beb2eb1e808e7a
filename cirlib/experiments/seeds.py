"""The multi-seed table: every fusion config trained with every seed, beside the image-only and text-only baselines,
as mean ± std of the best validation epoch (``cirlib train --seeds``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from cirlib.encoders.loading import config_encoder
from cirlib.evaluation.evaluate import evaluate_split
from cirlib.experiments.job_features import dataset_label, val_features
from cirlib.experiments.jobs import load_job_config, run_fusion_job
from cirlib.features import FeatureCache
from cirlib.features.splits import merged_missing, missing_summary
from cirlib.fusion import ZERO_SHOT_BASELINES
from cirlib.train.stage1 import Stage1Config
from cirlib.train.stage2 import FusionTrainConfig
from cirlib.util.atomic import write_json
from cirlib.util.errors import ConfigError
from cirlib.util.tables import markdown_table

TABLE_COLUMNS = {"fashioniq": ["dress R@10", "shirt R@10", "toptee R@10", "avg R@10", "avg R@50"],
                 "cirr": ["R@1", "R@5", "R@10", "R@50", "Rsubset@1", "Avg"]}


def mean_std(rows: Sequence[Mapping[str, float]], columns: Sequence[str]) -> dict[str, list[float]]:
    """{column: [mean, sample std]} (std 0 for a single row)."""
    return {c: [float(np.mean([r[c] for r in rows])), float(np.std([r[c] for r in rows], ddof=1))
                if len(rows) > 1 else 0.0] for c in columns}


def seed_variant(config: FusionTrainConfig | Stage1Config, seed: int,
                 folder: Path | str | None = None) -> FusionTrainConfig | Stage1Config:
    """``config`` with ``seed``, run in ``<folder>/seed<seed>`` (``folder`` None: the config's ``out``): the run
    folder of each seed of a multi-seed table."""
    folder = Path(config.out if folder is None else folder)
    return dataclasses.replace(config, seed=seed, out=str(folder / f"seed{seed}"))


def seed_table(config_paths: Sequence[Path | str], seeds: Sequence[int], results: Path | str,
               runs: Path | str | None = None, on_missing: str | None = None) -> str:
    """Train every config with every seed (in ``<out>/seed<k>``, or ``<runs>/<name of out>/seed<k>``;
    finished runs are reused), add the image-only and text-only baselines, write
    ``<results>/fusion_<dataset folder>.json`` (with the baselines' skipped images under "missing") and return
    the table. ``on_missing`` (None: each config's own) overrides the configs' field."""
    rows: dict[str, dict[str, dict]] = {}
    for path in config_paths:
        _, base = load_job_config(path, on_missing=on_missing)
        if not isinstance(base, FusionTrainConfig):
            raise ConfigError(str(path), "kind", base.kind, "fusion: --seeds tabulates fusion jobs (the stage-1 "
                              "comparison: python -m cirlib.experiments.stage1_table)")
        label = dataset_label(base)
        table = rows.setdefault(base.dataset, {"label": label, "config": {}, "rows": {}})
        if not table["rows"]:
            features = val_features(config_encoder(base), FeatureCache(base.cache), base)
            table["missing"] = missing_summary(merged_missing(features))
            for name in ("image only", "text only"):
                table["rows"][name] = {"runs": [evaluate_split(base.dataset, features, ZERO_SHOT_BASELINES[name])],
                                       "parameters": 0}
        folder = Path(base.out) if runs is None else Path(runs) / Path(base.out).name
        done = [run_fusion_job(seed_variant(base, seed, folder), resume=True) for seed in seeds]
        table["config"][base.fusion] = base.to_json()
        table["rows"][base.fusion] = {"runs": [r["best"] for r in done], "parameters": done[0]["parameters"],
                                      "seconds": [r["last"]["seconds"] for r in done]}
    texts = []
    for dataset, table in rows.items():
        columns = TABLE_COLUMNS[dataset]
        for row in table["rows"].values():
            row["mean_std"] = mean_std(row["runs"], columns)
        write_json(Path(results) / f"fusion_{table['label']}.json", {"seeds": list(seeds), **table})
        texts.append(format_seed_table(table, columns, seeds))
    return "\n\n".join(texts)


def format_seed_table(table: Mapping, columns: Sequence[str], seeds: Sequence[int]) -> str:
    """A markdown table: one row per method, mean ± std over ``seeds`` of the best validation epoch."""
    rows = ([name, f"{row['parameters']:,}", *(f"{m:.1f} ± {s:.1f}" for m, s in (row["mean_std"][c] for c in columns))]
            for name, row in table["rows"].items())
    return markdown_table(["method", "params", *columns], rows,
                          f"{table['label']} (val, best epoch; mean ± std over seeds {', '.join(map(str, seeds))})")
