"""WeiMoCIR α×β sweep: the fast grid versus one retrieval per cell, on synth-cirr val, in one run.

    python benchmarks/sweep.py [--benchmark data/synth] [--variant slides|code|both] [--grid 11] [--random]

The fast path (``cirlib.weimocir.sweeps.sweep``) makes a fixed set of matrix products and then does
element-wise work per cell; the plain path (``per_cell_sweep``) runs ``weighted_similarity`` and
the ``cirlib.metrics`` functions for every cell. Features come from the bundled synthclip (cached
in data/cache) when it is installed; otherwise, or with --random, random features of the same
shapes stand in, and the output says so. Both paths must give the same metrics (checked here and
in tests/test_sweep.py); the ratio is the speed-up.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from cirlib.data import CIRR
from cirlib.encoders import load_encoder
from cirlib.encoders.loading import bundled_model_dir
from cirlib.features import FeatureCache
from cirlib.features.captions import CaptionedSplit, CaptionFeatures, synth_captioned_splits
from cirlib.features.splits import SplitFeatures
from cirlib.weimocir.sweeps import per_cell_sweep, sweep


def random_cirr(root: Path, dim: int = 256, r: int = 3, seed: int = 0) -> CaptionedSplit:
    """synth-cirr val's names and protocol with random features of synthclip's shapes."""
    reader = CIRR(root)
    triplets, gallery = reader.triplets("val"), reader.gallery("val")
    gen = torch.Generator().manual_seed(seed)
    images, captions = torch.randn(len(gallery), dim, generator=gen), torch.randn(len(gallery), r, dim, generator=gen)
    rows = [gallery.index(t.reference) for t in triplets]
    features = SplitFeatures(gallery, images, images[rows], torch.randn(len(triplets), dim, generator=gen),
                             [t.reference for t in triplets], [t.target_hard for t in triplets],
                             [t.caption for t in triplets], {"img_set_members": [t.img_set.members for t in triplets]})
    return CaptionedSplit("cirr", features, CaptionFeatures(captions, captions[rows]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default="data/synth", help="the medium synthetic benchmark folder")
    parser.add_argument("--variant", choices=["slides", "code", "both"], default="both")
    parser.add_argument("--grid", type=int, default=11, help="values of α and of β (0 to 1)")
    parser.add_argument("--random", action="store_true", help="random features even if synthclip is installed")
    args = parser.parse_args()
    benchmark = Path(args.benchmark)
    installed = (bundled_model_dir("synthclip") / "open_clip_config.json").is_file()
    if installed and not args.random:
        encoder = load_encoder("synthclip")
        cache = FeatureCache("data/cache")
        split = synth_captioned_splits(encoder, cache, benchmark, datasets=["synth-cirr"])["synth-cirr"]
        source = f"synthclip features ({encoder.identity})"
    else:
        split = random_cirr(benchmark / "synth-cirr")
        source = "RANDOM features of synthclip's shapes" + ("" if args.random else " (synthclip is not installed)")
    grid = np.linspace(0, 1, args.grid)
    f = split.features
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"synth-cirr val: {len(f.reference_names)} queries x {len(f.gallery_names)} gallery, "
          f"D={f.gallery.shape[1]}, R={split.captions.r}, {args.grid}x{args.grid} grid; {source}")
    for variant in (["slides", "code"] if args.variant == "both" else [args.variant]):
        start = time.perf_counter()
        fast = sweep(split, grid, grid, variant, device="cpu", progress=False)
        fast_s = time.perf_counter() - start
        start = time.perf_counter()
        plain = per_cell_sweep(split, grid, grid, variant, progress=False)
        plain_s = time.perf_counter() - start
        worst = max(float(np.abs(fast.metrics[m] - plain.metrics[m]).max()) for m in plain.metrics)
        print(f"[{variant}] per-cell path : {plain_s:8.2f} s")
        print(f"[{variant}] fast sweep    : {fast_s:8.2f} s")
        print(f"[{variant}] speed-up      : {plain_s / fast_s:8.1f}x   (largest metric difference {worst:.2g})")


if __name__ == "__main__":
    main()
