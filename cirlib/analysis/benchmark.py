"""Prepare the synthetic benchmark: build it (or find it built), check it, describe it."""

from __future__ import annotations

import json
from pathlib import Path

from cirlib.analysis.sanity import benchmark_sanity
from cirlib.data.synth.build import build_benchmark
from cirlib.data.synth.config import SynthConfig


def measure_sanity(out: Path, config: SynthConfig) -> dict:
    """The sanity baselines of a built benchmark, as saved in its manifest (integer keys become strings)."""
    return json.loads(json.dumps(benchmark_sanity(out, seed=config.seed)))


def prepare_benchmark(out: Path | str, config: SynthConfig, workers: int | None = None,
                      overwrite: bool = False, verify: bool = False) -> dict:
    """Build the three datasets under ``out``, compute their sanity baselines, write the datacards.

    Returns the manifest: configuration, counts, sanity numbers and every file's size and sha256 (also
    saved as ``out/manifest.json``). A complete benchmark with the same configuration is reused once its
    files are checked (sizes; ``verify``: sha256 too), and repaired where they are missing or damaged; see
    :mod:`cirlib.data.synth.build`. Everything happens under the folder's lock.
    """
    return build_benchmark(out, config, workers=workers, overwrite=overwrite, verify=verify,
                           measure_sanity=measure_sanity)


def format_summary(manifest: dict) -> str:
    """A plain-text report of a prepared benchmark: configuration, counts, sanity baselines."""
    config, counts, sanity = manifest["config"], manifest["counts"], manifest["sanity"]
    lines = [f"synthetic CIR benchmark  seed={config['seed']}  size={config['size']}", ""]
    fiq = counts["synth-fashioniq"]
    for split in next(iter(fiq.values())):
        per = "  ".join(f"{c}: {fiq[c][split]['queries']} q / {fiq[c][split]['gallery']} img" for c in fiq)
        lines.append(f"synth-fashioniq {split:5s}  {per}")
    for split, c in counts["synth-cirr"].items():
        lines.append(f"synth-cirr      {split:5s}  {c['queries']} queries, {c['gallery']} images, {c['img_sets']} img_sets")
    circo = counts["synth-circo"]
    for split in ("val", "test"):
        lines.append(f"synth-circo     {split:5s}  {circo[split]['queries']} queries, "
                     f"{circo[split]['mean_gt']} ground truths on average")
    lines.append(f"synth-circo     gallery {circo['gallery']['images']} images")
    lines += ["", "Sanity baselines on val (attribute labels only):"]
    f, r, m = sanity["synth-fashioniq"], sanity["synth-cirr"], sanity["synth-circo"]
    lines.append(f"{'':16s}{'FIQ avg R@10':>14s}{'FIQ avg R@50':>14s}{'CIRR R@1':>10s}{'CIRR R@10':>11s}"
                 f"{'CIRR Rs@1':>11s}{'CIRCO mAP@10':>14s}")
    for label in ("oracle", "reference only"):
        lines.append(f"{label:16s}{f[label]['avg R@10']:14.1f}{f[label]['avg R@50']:14.1f}{r[label]['R@1']:10.1f}"
                     f"{r[label]['R@10']:11.1f}{r[label]['Rsubset@1']:11.1f}{m[label]['10']:14.1f}")
    return "\n".join(lines)
