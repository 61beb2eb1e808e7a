"""Zero-shot textual inversion on the synthetic benchmark: Pic2Word, SEARLE (OTI), SEARLE-XL, LinCIR.

For each seed, trains the three jobs from ``configs/{pic2word,searle,lincir}_synth.yaml`` (seed and
run folder overridden; a finished run with the same config is reused), builds the val queries of
all three datasets with each method, and scores them with ``cirlib.evaluation.evaluate`` beside the
image-only, text-only and sum baselines, WeiMoCIR at each dataset's best (α, β) on val (an upper
bound) and, with ``--fusion-runs``, the Combiner and MoE of ``cirlib train --seeds`` (their best
epoch; the CIRR-trained model is also scored on CIRCO, which has no training split). Writes
``<results>/inversion.json`` (every seed's metrics, timings, the configs) and prints a mean ± std
table.

    python benchmarks/inversion.py --benchmark data/synth --seeds 0 1 2 --fusion-runs runs/table

    python benchmarks/inversion.py --injection-speed   # only the speed check below

Times: "train s" is the training loop plus, for SEARLE-XL, the OTI of its training images (the
stream features, shared by all runs and cached, are timed once as "stream s"); "query s" is the
time to build every val query (for SEARLE (OTI), the per-image optimisation).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from cirlib.encoders import describe, load_encoder
from cirlib.evaluation.evaluate import benchmark_features, evaluate_methods
from cirlib.experiments.jobs import fusion_method
from cirlib.features import FeatureCache
from cirlib.features.captions import synth_captioned_splits
from cirlib.fusion import ZERO_SHOT_BASELINES
from cirlib.inversion import (
    LinCIRConfig,
    Pic2WordConfig,
    PromptEncoder,
    SearleConfig,
    train_lincir,
    train_pic2word,
    train_searle,
)
from cirlib.inversion.evaluate import evaluate_inversion, load_inverter
from cirlib.inversion.loop import CHECKPOINT
from cirlib.inversion.stream import stream_features
from cirlib.metrics import protocol
from cirlib.train.checkpoint import read_record
from cirlib.train.stage2 import BEST, load_trained_fusion
from cirlib.util.atomic import write_json
from cirlib.util.config import load_config
from cirlib.weimocir.sweeps import best_cell, sweep

JOBS = {"pic2word": (Pic2WordConfig, train_pic2word), "searle": (SearleConfig, train_searle),
        "lincir": (LinCIRConfig, train_lincir)}
# (row name, job, use OTI instead of phi)
METHODS = (("Pic2Word", "pic2word", False), ("SEARLE (OTI)", "searle", True), ("SEARLE-XL", "searle", False),
           ("LinCIR", "lincir", False))
BASELINES = ("image only", "text only", "sum")
COLUMNS = (("fashioniq", "avg R@10"), ("fashioniq", "avg R@50"), ("cirr", "R@1"), ("cirr", "R@5"),
           ("cirr", "R@10"), ("cirr", "R@50"), ("cirr", "Rsubset@1"), ("cirr", "Avg"), ("circo", "mAP@5"),
           ("circo", "mAP@10"))


def trained_run(job: str, config) -> tuple[Path, dict]:
    """Train ``config``, or reuse the finished run of the same config in its folder; (folder, record)."""
    run = JOBS[job][1](config, resume=True)
    return run, read_record(run / CHECKPOINT)


def evaluate_seed(seed: int, configs: dict, work: str, benchmark: str, encoder, prompts, features) -> dict:
    """Train (or reuse) the seed's three runs and score the four methods; the result is saved in
    ``<work>/evaluation-seed<k>.json`` and reused while the configs, encoder and benchmark are the same."""
    seeded = {job: dataclasses.replace(config, seed=seed, out=f"{work}/{job}-seed{seed}")
              for job, config in configs.items()}
    key = json.dumps({"configs": {k: dataclasses.asdict(v) for k, v in seeded.items()}, "encoder": encoder.identity,
                      "benchmark": str(Path(benchmark).resolve())}, sort_keys=True)
    path = Path(work) / f"evaluation-seed{seed}.json"
    saved = json.loads(path.read_text()) if path.is_file() else {}
    if saved.get("key") == key:
        print(f"reusing {path}", flush=True)
        return saved
    trained = {job: trained_run(job, config) for job, config in seeded.items()}
    evaluated: dict = {"key": key, "metrics": {}, "train_seconds": {}, "query_seconds": {}}
    for name, job, use_oti in METHODS:
        run, record = trained[job]
        results, seconds = evaluate_inversion(features, prompts, {name: load_inverter(run, encoder, use_oti)},
                                              record["config"]["template"])
        evaluated["metrics"][name] = {d: results[d][name] for d in results}
        evaluated["query_seconds"][name] = round(seconds[name], 1)
        if not use_oti:
            evaluated["train_seconds"][name] = round(record["train_seconds"] + record.get("oti_seconds", 0.0), 1)
    write_json(path, evaluated)
    return evaluated


def weimocir_best(encoder, cache: FeatureCache, benchmark: str) -> tuple[dict, dict]:
    """({dataset: metrics} at each dataset's best (α, β) on val, {dataset: (α, β)}), WeiMoCIR "slides"."""
    metrics, cells = {}, {}
    for name, split in synth_captioned_splits(encoder, cache, benchmark).items():
        kind = name.removeprefix("synth-")
        result = sweep(split, progress=False)
        alpha, beta, _ = best_cell(result, protocol(kind).select_by)
        metrics[kind], cells[kind] = result.at(alpha, beta), (alpha, beta)
    return metrics, cells


def fusion_runs(folder: Path, features, fusion: str) -> tuple[list[dict], list[float]]:
    """Per seed, the FashionIQ- and CIRR-trained ``fusion`` of ``cirlib train --seeds --out folder``
    (best epoch) scored on val (the CIRR one on CIRR and CIRCO), and their training seconds summed."""
    runs, seconds = [], []
    for cirr_run in sorted((folder / f"synth_{fusion}_cirr").glob("seed*")):
        fiq_run = folder / f"synth_{fusion}_fashioniq" / cirr_run.name
        scores = {}
        for run, datasets in ((fiq_run, ("fashioniq",)), (cirr_run, ("cirr", "circo"))):
            model, _ = load_trained_fusion(run / BEST)
            results = evaluate_methods(features, {fusion: fusion_method(model)})
            scores |= {d: results[d][fusion] for d in datasets}
        runs.append(scores)
        seconds.append(sum(json.loads((r / "results.json").read_text())["last"]["seconds"]
                           for r in (fiq_run, cirr_run)))
    if not runs:
        raise FileNotFoundError(f"no {folder}/synth_{fusion}_cirr/seed* runs: train them with "
                                f"`cirlib train --config configs/synth_{fusion}_*.yaml --seeds 0 1 2 --out {folder}`")
    return runs, seconds


def mean_std(values: list[float]) -> list[float]:
    return [float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0]


def format_rows(rows: dict) -> str:
    """A markdown table: mean ± std over seeds per column, then the timings."""
    header = [f"{'FIQ' if d == 'fashioniq' else d.upper()} {c}" for d, c in COLUMNS] + ["train s", "query s"]
    lines = ["| method | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]
    for name, row in rows.items():
        cells = [f"{m:.1f} ± {s:.1f}" if len(row["runs"]) > 1 else f"{m:.1f}"
                 for m, s in (row["mean_std"][f"{d} {c}"] for d, c in COLUMNS)]
        cells += [f"{np.mean(row[k]):.0f}" if row[k] else "–" for k in ("train_seconds", "query_seconds")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def injection_speed(encoder, batch: int = 512, repeats: int = 5) -> str:
    """Forward + backward time of "a photo of $" with a pseudo-word (cut after the last EOT) against
    open_clip's ``encode_text`` of the same prompt with a real word (the full context), one run."""
    prompts = PromptEncoder.from_encoder(encoder)
    word = encoder.tokenizer.encode(" square ")[0]
    table = prompts.model.token_embedding.weight
    injected_tokens = prompts.tokenize(["a photo of $"] * batch)
    plain_tokens = encoder.tokenizer(["a photo of square"] * batch).to(encoder.device)

    def timed(run) -> float:
        run()
        started = time.perf_counter()
        for _ in range(repeats):
            run()
        return (time.perf_counter() - started) / repeats

    def injected() -> None:
        pseudo = table[[word] * batch].detach().clone().requires_grad_(True)
        prompts(injected_tokens, pseudo).sum().backward()

    def plain() -> None:
        table.requires_grad_(True)
        prompts.model.encode_text(plain_tokens).sum().backward()
        table.requires_grad_(False)
        table.grad = None

    new, old = timed(injected), timed(plain)
    return (f"batch {batch}, context {plain_tokens.shape[1]}: injection {new * 1000:.0f} ms, encode_text "
            f"{old * 1000:.0f} ms per forward+backward; ratio {old / new:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--benchmark", default="data/synth")
    parser.add_argument("--model", default="synthclip")
    parser.add_argument("--cache", default="data/cache")
    parser.add_argument("--configs", default="configs", help="folder of {pic2word,searle,lincir}_synth.yaml")
    parser.add_argument("--work", default="runs/inversion", help="run folders go to <work>/<method>-seed<k>")
    parser.add_argument("--results", default="results")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fusion-runs", default=None,
                        help="folder of `cirlib train --seeds` runs: adds the Combiner and MoE rows")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--injection-speed", action="store_true", help="only time the injection and exit")
    args = parser.parse_args()

    encoder = load_encoder(args.model, device=args.device)
    if args.injection_speed:
        print(injection_speed(encoder))
        return
    prompts = PromptEncoder.from_encoder(encoder)
    configs = {job: load_config(cls, Path(args.configs) / f"{job}_synth.yaml", model=args.model, cache=args.cache,
                                device=args.device) for job, (cls, _) in JOBS.items()}
    first = configs["pic2word"]
    started = time.perf_counter()
    stream_features(encoder, args.cache, first.stream_seed, first.stream_start, first.train_pairs, first.workers)
    stream_seconds = time.perf_counter() - started
    features = benchmark_features(encoder, FeatureCache(args.cache), args.benchmark)

    baselines = evaluate_methods(features, {name: ZERO_SHOT_BASELINES[name] for name in BASELINES})
    runs: dict[str, list[dict]] = {name: [{d: baselines[d][name] for d in baselines}] for name in BASELINES}
    weimocir, cells = weimocir_best(encoder, FeatureCache(args.cache), args.benchmark)
    runs["WeiMoCIR (best α/β on val)"] = [weimocir]
    train_seconds: dict[str, list[float]] = {name: [] for name in runs} | {m[0]: [] for m in METHODS}
    query_seconds: dict[str, list[float]] = {name: [] for name in train_seconds}
    for seed in args.seeds:
        evaluated = evaluate_seed(seed, configs, args.work, args.benchmark, encoder, prompts, features)
        for name, metrics in evaluated["metrics"].items():
            runs.setdefault(name, []).append(metrics)
            query_seconds[name].append(evaluated["query_seconds"][name])
            if name in evaluated["train_seconds"]:
                train_seconds[name].append(evaluated["train_seconds"][name])
            print(f"seed {seed} {name}: " + json.dumps({f"{d} {c}": round(metrics[d][c], 2) for d, c in COLUMNS}),
                  flush=True)

    for fusion, label in (("combiner", "Combiner"), ("moe", "MoE")) if args.fusion_runs else ():
        runs[label], train_seconds[label] = fusion_runs(Path(args.fusion_runs), features, fusion)
        query_seconds[label] = []

    rows = {name: {"runs": by_seed, "train_seconds": train_seconds[name], "query_seconds": query_seconds[name],
                   "mean_std": {f"{d} {c}": mean_std([r[d][c] for r in by_seed]) for d, c in COLUMNS}}
            for name, by_seed in runs.items()}
    table = format_rows(rows)
    write_json(Path(args.results) / "inversion.json",
               {"encoder": describe(encoder), "benchmark": str(args.benchmark), "seeds": args.seeds,
                "stream_seconds": round(stream_seconds, 1), "weimocir_cells": cells,
                "configs": {k: dataclasses.asdict(v) for k, v in configs.items()},
                "columns": [f"{d} {c}" for d, c in COLUMNS], "rows": rows, "table": table})
    print(f"\n{Path(args.benchmark).name} (val); mean ± std over seeds {args.seeds}; baselines are deterministic\n")
    print(table)
    print(f"\nstream features (shared, cached): {stream_seconds:.0f} s; saved {args.results}/inversion.json")


if __name__ == "__main__":
    main()
