"""CLIP4Cir's two stages compared over seeds: the frozen encoder + Combiner, stage 1 alone (the sum fusion with the
fine-tuned encoder) and stage 1 + Combiner (the Combiner trained on the fine-tuned, frozen features).

    python -m cirlib.experiments.stage1_table --datasets fashioniq cirr --seeds 0 1 2

Per dataset it reads three configs from ``--configs``: ``synth_combiner_<dataset>.yaml`` (the frozen encoder's
Combiner), ``synth_stage1_<dataset>.yaml`` (the fine-tuning) and ``synth_stage1_combiner_<dataset>.yaml`` (the same
Combiner for the fine-tuned encoder). Every seed k runs in ``<out>/seed<k>`` of its config, as ``cirlib train
--seeds`` does (finished runs are reused, unfinished ones resumed); seed k's Combiner of the fine-tuned encoder
trains on seed k's stage-1 ``best.safetensors``. Each row reports the best validation epoch and the training
seconds of its whole pipeline (stage 1 plus stage 2 for the last row; training loops with their per-epoch
validation, not the feature encoding); the table goes to ``<results>/stage1_<dataset folder>.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

from cirlib.encoders.loading import config_encoder
from cirlib.experiments.jobs import load_job_config, run_fusion_job, run_stage1_job
from cirlib.experiments.seeds import format_seed_table, mean_std, seed_variant
from cirlib.train.run_folder import config_differences
from cirlib.train.stage1 import BEST, Stage1Config
from cirlib.train.stage2 import TRAINABLE_DATASETS, FusionTrainConfig
from cirlib.util.atomic import write_json
from cirlib.util.errors import CirlibError, ConfigError, FileError

COLUMNS = {"fashioniq": ["avg R@10", "avg R@50"], "cirr": ["R@1", "R@5", "R@10", "Rsubset@1", "Avg"]}
SECONDS = "train s"
CONFIGS = {"frozen + Combiner": "synth_combiner_{}.yaml", "stage-1 sum": "synth_stage1_{}.yaml",
           "stage-1 + Combiner": "synth_stage1_combiner_{}.yaml"}
"""The configs of one dataset's comparison, by the row they give, in ``--configs``."""


def _row(result: dict, seconds: float) -> dict:
    """A run's best validation row with the training seconds of its pipeline."""
    return {**result["best"], SECONDS: seconds}


def comparison_configs(paths: Sequence[Path | str]) -> tuple[FusionTrainConfig, Stage1Config, FusionTrainConfig]:
    """The three configs at ``paths`` (:data:`CONFIGS`' order), checked: the two Combiners may differ only in the
    encoder's weights (``pretrained``) and where they run, or the comparison would not be one."""
    frozen, stage1, finetuned = (load_job_config(path)[1] for path in paths)
    differing = [line for line in config_differences(frozen.to_json(), finetuned.to_json())
                 if not line.startswith("pretrained:")]
    if differing:
        name = differing[0].split(":")[0]
        raise ConfigError(str(paths[2]), name, getattr(finetuned, name), f"{getattr(frozen, name)!r} as in "
                          f"{paths[0]}: the two Combiners differ only in pretrained")
    return frozen, stage1, finetuned


def stage1_seed(frozen: FusionTrainConfig, stage1: Stage1Config, finetuned: FusionTrainConfig,
                seed: int) -> dict[str, tuple[dict, int]]:
    """Train (or reuse) seed ``seed`` of the three configs (:func:`comparison_configs`); return {row name: (best
    row with its pipeline's training seconds, trained parameters)}."""
    combiner = run_fusion_job(seed_variant(frozen, seed), resume=True)
    tuned_config = seed_variant(stage1, seed)
    tuned = run_stage1_job(tuned_config, resume=True)
    both_config = dataclasses.replace(seed_variant(finetuned, seed), pretrained=str(Path(tuned_config.out) / BEST))
    both = run_fusion_job(both_config, resume=True)
    _check_weights(both, both_config)
    seconds = tuned["last"]["seconds"]
    return {"frozen + Combiner": (_row(combiner, combiner["last"]["seconds"]), combiner["parameters"]),
            "stage-1 sum": (_row(tuned, seconds), tuned["parameters"]),
            "stage-1 + Combiner": (_row(both, seconds + both["last"]["seconds"]),
                                   tuned["parameters"] + both["parameters"])}


def _check_weights(result: dict, config: FusionTrainConfig) -> None:
    """Refuse a reused stage-2 run whose encoder is not the one its ``pretrained`` file holds now: its config names
    the weights by path, so a stage-1 run trained again in the same folder would leave it stale."""
    identity, trained = config_encoder(config, "cpu").identity, result["encoder"].split("  ")[0]  # describe()'s
    if trained != identity:
        raise FileError(config.out, f"holds a Combiner trained on other weights than {config.pretrained} holds now "
                        f"({trained}, now {identity}: stage 1 was trained again)",
                        "delete that run folder and rerun to train it on the current weights")


def stage1_comparison(paths: Sequence[Path | str], seeds: Sequence[int], results: Path | str) -> str:
    """The comparison table of one dataset (module docstring) over ``seeds``, written to
    ``<results>/stage1_<dataset folder>.json``; returns it as markdown."""
    configs = comparison_configs(paths)
    columns, label = COLUMNS[configs[1].dataset] + [SECONDS], Path(configs[1].data_root).name
    per_seed = [stage1_seed(*configs, seed) for seed in seeds]
    rows = {name: {"runs": [done[name][0] for done in per_seed], "parameters": per_seed[0][name][1]}
            for name in per_seed[0]}
    for row in rows.values():
        row["mean_std"] = mean_std(row["runs"], columns)
    table = {"label": label, "configs": [str(path) for path in paths], "rows": rows}
    write_json(Path(results) / f"stage1_{label}.json", {"seeds": list(seeds), **table})
    return format_seed_table(table, columns, seeds)


def config_paths(folder: Path | str, dataset: str) -> list[Path]:
    """The three configs of ``dataset``'s comparison in ``folder`` (:data:`CONFIGS`)."""
    return [Path(folder) / name.format(dataset) for name in CONFIGS.values()]


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (module docstring); an error a user can fix is one line on stderr, exit status 2."""
    parser = argparse.ArgumentParser(prog="python -m cirlib.experiments.stage1_table", description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", choices=TRAINABLE_DATASETS, default=list(TRAINABLE_DATASETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--configs", default="configs", help="the folder of the configs")
    parser.add_argument("--results", default="results", help="where the table JSON goes")
    args = parser.parse_args(argv)
    try:
        for dataset in args.datasets:
            print(stage1_comparison(config_paths(args.configs, dataset), args.seeds, args.results), flush=True)
    except CirlibError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
