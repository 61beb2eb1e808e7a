"""Synthetic benchmark rendering: one process versus all cores, in one run.

    python benchmarks/synth.py [--images 2000]

Renders the same garment and scene images twice into temporary folders (byte-identical results,
checked) and prints images/s for each and the ratio.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from cirlib.data.synth.garments import GARMENT_CATEGORIES, random_garment
from cirlib.data.synth.render import RenderJob, render_all
from cirlib.data.synth.scenes import random_scene


def jobs(n: int) -> list[RenderJob]:
    rng = np.random.default_rng(0)
    return [RenderJob(f"g/{i}.png", random_garment(GARMENT_CATEGORIES[i % 3], rng)) if i % 2 else
            RenderJob(f"s/{i}.png", random_scene(rng, 1, 4)) for i in range(n)]


def digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.png")):
        h.update(path.read_bytes())
    return h.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    args = parser.parse_args()
    work, cores = jobs(args.images), os.cpu_count() or 1
    timings, digests = {}, {}
    for workers in (1, cores):
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            render_all(work, Path(folder), seed=0, workers=workers, desc=f"{workers} worker(s)")
            timings[workers] = time.perf_counter() - start
            digests[workers] = digest(Path(folder))
    assert digests[1] == digests[cores], "rendering must not depend on the worker count"
    for workers, seconds in timings.items():
        print(f"{workers:2d} worker(s): {args.images / seconds:7.1f} images/s")
    print(f"ratio {cores} vs 1: {timings[1] / timings[cores]:.2f}x on {cores} cores")


if __name__ == "__main__":
    main()
