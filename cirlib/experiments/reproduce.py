"""Run a paper's setting on the real dataset a user has downloaded, beside the paper's numbers.

    cirlib reproduce --dataset fashioniq --method weimocir --data-root data/fashionIQ \\
        --captions data/fashionIQ/captions_blip2
    cirlib reproduce --dataset cirr --method combiner --data-root data/cirr_dataset \\
        --checkpoint runs/clip4cir_rn50x4_cirr/best.safetensors --split test1

Zero-shot methods (image-only, text-only, sum) need only the dataset and a CLIP; WeiMoCIR also
needs the gallery captions a captioning model wrote (``--captions``: one file, or for FashionIQ a
folder of ``<category>.<split>.json``); trained fusion methods (combiner, clip-cd, moe) take the
``best.safetensors`` of a ``cirlib train`` run on that dataset (``--checkpoint``).

Settings not given are the checkpoint's (a trained fusion only fits the features it was trained on:
its model, pretrained, preprocess and quick_gelu; a mismatch, another fusion than ``--method``, another
dataset or another feature width is refused in one line), else the paper's
(:data:`cirlib.experiments.paper_numbers.PAPER_SETTINGS`: WeiMoCIR's OpenCLIP LAION-2B weights and CLIP
preprocessing, CLIP4Cir's OpenAI RN50x4 and targetpad). An open_clip architecture is never run with
random weights. The paper's row is printed only when the model and pretrained strings match the
paper's exactly; otherwise the note says which weights the paper used.

The val split is evaluated; on CIRR test1 and CIRCO test (no public targets) the test-server
submission files are written instead, into ``results``. WeiMoCIR on val is also scored with (α, β) chosen on
held-out halves of val (``cirlib.weimocir.select``: each half of the queries at the best cell of the other half),
beside the best cell of the whole split (an upper bound), in the result's "held-out choice". Every result is named
by the dataset, method, split and a hash of the settings (:func:`run_name`), so runs with other settings never
overwrite each other, and holds the settings and the count of images skipped (``--on-missing skip``).

Modules: :mod:`cirlib.experiments.reproduce_config` (the settings and their checks),
:mod:`cirlib.experiments.reproduce_measure` (features, metrics, submission files); this one runs them and sets the
result beside the paper's numbers.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from cirlib.encoders import describe
from cirlib.encoders.loading import config_encoder
from cirlib.experiments.paper_numbers import paper_result, paper_weights
from cirlib.experiments.reproduce_config import ReproduceConfig, checkpoint_record, resolve_settings, run_name
from cirlib.experiments.reproduce_measure import (
    captioned,
    evaluate_val,
    scorer,
    split_features,
    submit,
    weimocir_val,
)
from cirlib.features import FeatureCache
from cirlib.features.splits import merged_missing, missing_summary
from cirlib.util.atomic import write_json
from cirlib.util.errors import FileError
from cirlib.util.tables import text_table

SERVERS = {"cirr": "https://cirr.cecs.anu.edu.au/", "circo": "https://circo.micc.unifi.it/"}


def _paper(config: ReproduceConfig) -> tuple[dict | None, str]:
    """(the paper's row for exactly these weights or None, a note saying whose numbers they are or why none)."""
    quoted = paper_result(config.dataset, config.method, config.model, config.pretrained)
    if quoted is not None:
        note = f"paper: {quoted.source} ({quoted.split} split, weights {quoted.weights})"
        row = {"metrics": quoted.metrics, "source": quoted.source, "split": quoted.split,
               "weights": str(quoted.weights), "note": quoted.note}
        return row, note + (f", {quoted.note}" if quoted.note else "")
    used = paper_weights(config.dataset, config.method)
    if not used:
        return None, f"the seeds quote no number for {config.method} on {config.dataset}"
    source = paper_result(config.dataset, config.method, used[0].model, used[0].pretrained).source
    return None, (f"no paper row: {source} quote {config.method} on {config.dataset} with "
                  f"{', '.join(map(str, used))} (--model, --pretrained), not with {config.model} {config.pretrained}")


def reproduce(config: ReproduceConfig) -> dict:
    """Measured metrics on the val split (or the submission files of a test split) and the paper's row.

    The settings are resolved first (:func:`resolve_settings`); the result holds them, its ``name``
    (:func:`run_name`), the encoder, the images skipped, and the paper's row or why there is none.
    """
    config = resolve_settings(config)
    record = checkpoint_record(config)
    encoder = config_encoder(config)
    if record is not None and record["embed_dim"] != encoder.embed_dim:
        raise FileError(config.checkpoint, f"was trained on {record['embed_dim']}-d features, but {encoder.name} "
                        f"gives {encoder.embed_dim}-d", "pass the encoder it was trained with, or a checkpoint trained "
                        "on this encoder's features")
    cache = FeatureCache(config.cache)
    features, image_path = split_features(encoder, cache, config)
    result = {"name": run_name(config), "config": asdict(config), "encoder": describe(encoder), "split": config.split,
              "missing": missing_summary(merged_missing(features)), "measured": {}, "submission": []}
    if config.split == "val" and config.method == "weimocir":
        split = captioned(encoder, cache, config, features, image_path)
        result["measured"], result["held-out choice"] = weimocir_val(split, config)
    elif config.split == "val":
        result["measured"] = evaluate_val(config, features)
    else:
        result["submission"] = submit(config, features, scorer(encoder, cache, config, features, image_path))
    result["paper"], result["paper note"] = _paper(config)
    return result


def save_result(result: dict, folder: Path | str) -> Path:
    """Write ``result`` as ``<folder>/<its name>.json``; return the path."""
    return write_json(Path(folder) / f"{result['name']}.json", result)


def _comparison_columns(result: dict) -> dict[str, dict]:
    """{column: metrics}: the paper's, the measured ones, and (WeiMoCIR on val) the held-out choice's and the upper
    bound's."""
    columns = {"paper": result["paper"]["metrics"] if result["paper"] else {}, "measured": result["measured"]}
    held = result.get("held-out choice")
    if held:
        columns |= {"held-out": held["metrics"], "upper bound": held["upper bound"]["metrics"]}
    return columns


def _val_lines(result: dict) -> list[str]:
    """Notes under a val result: where "measured" was taken, and (WeiMoCIR) what the held-out and upper-bound
    columns are."""
    split, held = result.get("split", "val"), result.get("held-out choice")
    if not held:
        return [f"measured: {split} split"]
    config, (alpha, beta) = result["config"], held["upper bound"]["cell"]
    return [f"measured: {split} split at α={config['alpha']:g}, β={config['beta']:g} (--alpha, --beta)",
            f"held-out: {held['chosen']} ({held['protocol']})",
            f"upper bound: α={alpha:g}, β={beta:g}, {held['upper bound']['note']}: a ceiling, not a result"]


def format_comparison(result: dict) -> str:
    """Paper and measured numbers side by side: the paper's metrics first, then every other measured one; for
    WeiMoCIR on val also the held-out choice and the upper bound."""
    columns = _comparison_columns(result)
    names = list(dict.fromkeys(name for metrics in columns.values() for name in metrics))
    rows = [[name, *("-" if metrics.get(name) is None else f"{metrics[name]:.2f}" for metrics in columns.values())]
            for name in names]
    lines = [text_table(["metric", *columns], rows), result["paper note"]]
    if result.get("submission"):
        server = SERVERS[result["config"]["dataset"]]
        lines.append(f"measured: none ({result.get('split', 'val')} has no public targets); submission files for "
                     f"{server}: " + ", ".join(result["submission"]))
    else:
        lines += _val_lines(result)
    skipped = result.get("missing", {}).get("skipped images", 0)
    if skipped:
        lines.append(f"skipped {skipped} missing images and the queries that need them (--on-missing skip): "
                     "fewer queries than the paper's, so not comparable as is")
    return "\n".join(lines)
