"""The main job (``cirlib demo``, ``make demo``): the whole pipeline on the synthetic benchmark, end to end.

Stages: build the benchmark -> encode its val splits and gallery captions with the bundled
``synthclip`` -> zero-shot baselines (image only, text only, sum) -> WeiMoCIR swept over the α×β
grid, with (α, β) chosen on held-out halves of val (``cirlib.weimocir.select``) -> Combiner and MoE trained on the
train splits (stage 2, cached features) -> one FashionIQ-style and one CIRR-style table, printed and saved under
``results/`` with two figures and the configuration. Every stage reuses what an earlier run left (the benchmark,
the feature cache, finished training runs), so a rerun takes about a minute.

Reading the tables: the trained rows are their last epoch (no selection on val). WeiMoCIR's default row scores
each half of the val queries with the best cell of the other half (2-fold cross-fitting, "α 0.6/0.7" gives the two
halves' values); its upper-bound row is the best cell *on the same val split*, an upper bound for a training-free
method.

    from cirlib.apps.demo import DemoConfig, run_demo
    result = run_demo(DemoConfig(benchmark="data/synth-small", size="small", epochs=2))
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from matplotlib.figure import Figure

from cirlib.analysis.benchmark import format_summary, prepare_benchmark
from cirlib.data.synth.config import SIZES, preset
from cirlib.encoders import describe, load_encoder
from cirlib.encoders.transforms import PREPROCESS_KINDS
from cirlib.evaluation.evaluate import evaluate_split, markdown_table
from cirlib.experiments.jobs import config_variant, run_fusion_job
from cirlib.features import FeatureCache
from cirlib.features.captions import split_features, synth_captioned_splits
from cirlib.fusion import ZERO_SHOT_BASELINES
from cirlib.metrics.protocols import protocol
from cirlib.util.atomic import save_figure, write_json, write_text
from cirlib.util.config import DEVICE, PRECISIONS, setting, validate
from cirlib.util.device import resolve_device
from cirlib.viz.plots import parameter_heatmap
from cirlib.weimocir import VARIANTS
from cirlib.weimocir.select import Cell, HeldOutChoice, Scores, held_out_choice
from cirlib.weimocir.sweeps import SweepResult, sweep

DEMO_DATASETS = {"fashioniq": "synth-fashioniq", "cirr": "synth-cirr"}
"""The datasets the demo (and notebooks 02, 03, 05) train on: {dataset: its folder in the synthetic benchmark}."""
FUSION_LABELS = {"combiner": "Combiner", "moe": "MoE", "bilinear": "Bilinear", "sum": "Sum"}
FIRST_RUN_MINUTES = {"tiny": 1, "small": 2, "medium": 6}
"""A first run's wall time on 2 CPU cores with the default settings (measured; README)."""
GPU_STAGE_SECONDS = {"benchmark": 20, "features and zero-shot baselines": 11, "WeiMoCIR α/β sweep": 1}
"""Stages of a first medium run on one H200 with 16 cores (issue 13; training was not timed there)."""


@dataclass
class DemoConfig:
    """Everything that determines the demo's numbers (printed first, saved in ``results/demo.json``)."""

    benchmark: str = "data/synth"       # folder of the synthetic benchmark (rebuilt if stale)
    size: str = setting("medium", choices=SIZES)
    seed: int = setting(0, minimum=0)   # the benchmark's seed
    workers: int | None = setting(None, minimum=1)  # rendering processes (default: all cores)
    model: str = "synthclip"
    pretrained: str | None = None
    preprocess: str | None = setting(None, choices=PREPROCESS_KINDS)
    device: str = setting("auto", **DEVICE)
    precision: str = setting("auto", choices=PRECISIONS)  # training: bf16 autocast on CUDA, float32 on CPU
    cache: str = "data/cache"
    configs: str = "configs"            # holds synth_<fusion>_<dataset>.yaml
    fusions: list = setting(factory=lambda: ["combiner", "moe"], items=tuple(FUSION_LABELS))
    epochs: int = setting(4, minimum=1)  # per trained model (the configs say 8; 4 keeps the demo short)
    training_seed: int = setting(0, minimum=0)
    runs: str = "runs/demo"             # training runs go to <runs>/<config name>-<hash>
    variant: str = setting("slides", choices=VARIANTS)  # WeiMoCIR's scoring (cirlib.weimocir.weighted)
    results: str = "results"

    def __post_init__(self) -> None:
        validate(self)


@dataclass
class DemoResult:
    """What the demo measured, and what later analysis needs (features, splits, runs, sweeps)."""

    config: DemoConfig
    tables: dict          # {dataset: {method: metrics}}
    best_cells: dict      # {dataset: (α, β)}: the best cell on the whole val split (the upper-bound row)
    held_out: dict        # {dataset: HeldOutChoice}: the default WeiMoCIR row
    sweeps: dict          # {dataset: SweepResult}
    splits: dict          # {dataset: CaptionedSplit or {category: CaptionedSplit}}
    runs: dict            # {dataset: {fusion label: run folder}}
    seconds: dict         # {stage: wall seconds}
    files: list = field(default_factory=list)

    def weimocir_label(self, dataset: str) -> str:
        """The name of the default WeiMoCIR row: (α, β) chosen on held-out halves of val."""
        return held_out_label(self.held_out[dataset])

    def upper_bound_label(self, dataset: str) -> str:
        """The name of the WeiMoCIR row at the best cell of the reported split itself."""
        return upper_bound_label(self.best_cells[dataset])

    def weimocir_scores(self, dataset: str) -> Scores:
        """The (queries, gallery) scores of the default WeiMoCIR row ({category: scores} for FashionIQ)."""
        return self.held_out[dataset].scores(self.splits[dataset])


def held_out_label(choice: HeldOutChoice) -> str:
    """A table row's name for WeiMoCIR at a held-out choice, e.g. "WeiMoCIR (α 0.6/0.6, β 0.2/0.3, held-out)"."""
    return f"WeiMoCIR ({choice.cells_text()}, held-out)"


def upper_bound_label(cell: Cell) -> str:
    """A table row's name for WeiMoCIR at the best cell of the split it is reported on."""
    return f"WeiMoCIR upper bound (α={cell[0]:g}, β={cell[1]:g}, chosen on the reported split)"


class _Stages:
    """Numbered stage headers with their wall time, so a long run shows where it is."""

    def __init__(self, names: list[str]) -> None:
        self.names, self.seconds = names, {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        print(f"\n[{self.names.index(name) + 1}/{len(self.names)}] {name}", flush=True)
        started = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - started, 1)
        print(f"[{self.names.index(name) + 1}/{len(self.names)}] {name}: done in {self.seconds[name]:.0f} s",
              flush=True)


STAGES = ["benchmark", "features and zero-shot baselines", "WeiMoCIR α/β sweep", "training Combiner and MoE",
          "tables and figures"]


def _config_path(config: DemoConfig, dataset: str, fusion: str) -> Path:
    return Path(config.configs) / f"synth_{fusion}_{dataset}.yaml"


def _check_configs(config: DemoConfig) -> None:
    """Fail before the long stages if a training config is missing."""
    for dataset in DEMO_DATASETS:
        for fusion in config.fusions:
            path = _config_path(config, dataset, fusion)
            if not path.is_file():
                raise FileNotFoundError(f"{path} is missing: the demo trains from the repository's configs/ folder; "
                                        "run it from the repository root or pass --configs")


def _train(config: DemoConfig, dataset: str, fusion: str, verbose: bool = True) -> tuple[Path, dict]:
    job = config_variant(_config_path(config, dataset, fusion), config.runs, epochs=config.epochs,
                         seed=config.training_seed, data_root=str(Path(config.benchmark) / DEMO_DATASETS[dataset]),
                         model=config.model, pretrained=config.pretrained, preprocess=config.preprocess,
                         cache=config.cache, device=config.device, precision=config.precision)
    results = run_fusion_job(job, resume=True, progress=verbose, verbose=verbose)
    metrics = {k: v for k, v in results["last"].items() if k in protocol(dataset).columns}
    return Path(job.out), metrics


def _figures(result: DemoResult, out: Path) -> list[Path]:
    figure = Figure(figsize=(12, 3.8))  # not pyplot: files only, whatever the backend
    axes = figure.subplots(1, 2)
    for ax, (dataset, metric) in zip(axes, (("fashioniq", "avg R@10"), ("cirr", "R@10"))):
        names, values = list(result.tables[dataset])[::-1], [m[metric] for m in result.tables[dataset].values()][::-1]
        ax.barh(names, values, color="steelblue")
        ax.set(xlabel=f"{metric} (%)", title=f"{DEMO_DATASETS[dataset]} (val)", xlim=(0, 100))
        for y, value in enumerate(values):
            ax.text(value + 1, y, f"{value:.1f}", va="center", fontsize=8)
    figure.tight_layout()
    recall = out / "demo_recall.png"
    save_figure(recall, figure, dpi=120)
    figure = Figure(figsize=(13, 5))
    axes = figure.subplots(1, 2)
    for ax, (dataset, result_) in zip(axes, result.sweeps.items()):
        metric = protocol(dataset).select_by
        parameter_heatmap(result_.metrics[metric], result_.alphas, result_.betas, ax=ax,
                          title=f"WeiMoCIR {DEMO_DATASETS[dataset]} {metric}")
    figure.tight_layout()
    heatmaps = out / "demo_sweep.png"
    save_figure(heatmaps, figure, dpi=110)
    return [recall, heatmaps]


def _printer(verbose: bool) -> Callable[..., None]:
    """``print``, or for a quiet run a function that prints nothing."""
    return print if verbose else lambda *args, **kwargs: None


def run_demo(config: DemoConfig, verbose: bool = True) -> DemoResult:
    """Run every stage (see the module docstring), print the tables and save them with the figures.

    ``verbose`` (the command line's default) prints the config, the benchmark summary, the training logs, the
    tables and progress bars; False (a notebook, which shows the tables itself) prints only the stage lines (and
    the rendering bar of a benchmark it builds)."""
    say = _printer(verbose)
    trained = " and ".join(FUSION_LABELS.get(f, f) for f in config.fusions)
    say(f"CIR Lab demo: synthetic benchmark -> {config.model} features -> zero-shot baselines -> WeiMoCIR with α/β "
        f"chosen on held-out halves of val -> trained {trained} -> tables.\n"
        f"{expected_time(config)}\n"
        f"demo config: {json.dumps(dataclasses.asdict(config))}", flush=True)
    _check_configs(config)
    stage = _Stages(STAGES)
    with stage("benchmark"):
        manifest = prepare_benchmark(config.benchmark, preset(config.size, seed=config.seed), workers=config.workers,
                                     overwrite=True)  # the demo owns its folder: a stale benchmark is rebuilt
        say(format_summary(manifest))
    with stage("features and zero-shot baselines"):
        encoder = load_encoder(config.model, pretrained=config.pretrained, preprocess=config.preprocess,
                               device=config.device)
        splits = synth_captioned_splits(encoder, FeatureCache(config.cache, progress=verbose), config.benchmark,
                                        datasets=list(DEMO_DATASETS.values()))
        splits = {dataset: splits[name] for dataset, name in DEMO_DATASETS.items()}
        tables = {dataset: {name: evaluate_split(dataset, split_features(split), method)
                            for name, method in ZERO_SHOT_BASELINES.items()} for dataset, split in splits.items()}
    sweeps: dict[str, SweepResult] = {}
    held_out: dict[str, HeldOutChoice] = {}
    with stage("WeiMoCIR α/β sweep"):
        for dataset, split in splits.items():
            sweeps[dataset] = sweep(split, variant=config.variant, progress=verbose)
            choice = held_out[dataset] = held_out_choice(split, config.variant, full=sweeps[dataset])
            tables[dataset][held_out_label(choice)] = choice.metrics
            tables[dataset][upper_bound_label(choice.upper_cell)] = choice.upper_metrics
    best_cells = {dataset: choice.upper_cell for dataset, choice in held_out.items()}
    runs: dict[str, dict[str, Path]] = {dataset: {} for dataset in DEMO_DATASETS}
    with stage("training Combiner and MoE"):
        for dataset in DEMO_DATASETS:
            for fusion in config.fusions:
                label = FUSION_LABELS.get(fusion, fusion)
                runs[dataset][label], tables[dataset][label] = _train(config, dataset, fusion, verbose)
    result = DemoResult(config, tables, best_cells, held_out, sweeps, splits, runs, stage.seconds)
    with stage("tables and figures"):
        out = Path(config.results)
        out.mkdir(parents=True, exist_ok=True)
        texts = _tables_markdown(result)
        for dataset, text in texts.items():
            write_text(out / f"demo_{dataset}.md", text + "\n")
            say("\n" + text)
        result.files = [str(out / f"demo_{d}.md") for d in texts] + [str(p) for p in _figures(result, out)]
    write_json(out / "demo.json", {"config": dataclasses.asdict(config), "encoder": describe(encoder),
                                   "machine": _machine(), "benchmark": manifest["counts"],
                                   "best_cells": best_cells, "held_out": {d: c.summary() for d, c in held_out.items()},
                                   "tables": tables, "seconds": stage.seconds,
                                   "runs": {d: {k: str(v) for k, v in r.items()} for d, r in runs.items()}})
    total = sum(stage.seconds.values())
    say(f"\nsaved {out}/demo.json, " + ", ".join(result.files) + f"\ndemo finished in {total / 60:.1f} minutes "
        f"({', '.join(f'{k}: {v:.0f} s' for k, v in stage.seconds.items())})", flush=True)
    return result


def expected_time(config: DemoConfig) -> str:
    """What the user should expect, for the device the demo will run on (figures measured; README)."""
    if resolve_device(config.device).type == "cuda":
        stages = ", ".join(f"{name} {seconds} s" for name, seconds in GPU_STAGE_SECONDS.items())
        return (f"Expected time on a GPU, measured for size=medium on one H200 with 16 cores: {stages}, each trained "
                "model a few seconds; rendering the benchmark on fewer cores takes longer.")
    return (f"Expected time on 2 CPU cores: about {FIRST_RUN_MINUTES.get(config.size, '?')} minutes for "
            f"size={config.size} on a first run; about a minute when the benchmark, features and runs are already "
            "there.")


def _tables_markdown(result: DemoResult) -> dict[str, str]:
    config = result.config
    note = (f"trained rows: epoch {config.epochs} of {config.epochs}; WeiMoCIR ({config.variant}): each half of the "
            "val queries scored at the best (α, β) of the other half (held-out; α, β: the two halves' cells), and "
            "the best cell of this val split itself (an upper bound)")
    kinds = {"fashioniq": "recall", "cirr": "CIRR metrics"}
    return {dataset: markdown_table(result.tables[dataset], protocol(dataset).columns,
                                    f"{DEMO_DATASETS[dataset]} (val), {kinds[dataset]} %, {config.model}; {note}")
            for dataset in DEMO_DATASETS}


def _machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu threads": torch.get_num_threads(), "cuda": torch.cuda.get_device_name(0)
            if torch.cuda.is_available() else None, "torch": torch.__version__}
