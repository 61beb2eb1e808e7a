"""Top-k ranking: cirlib's partial-selection path versus a full stable argsort, in one run.

    python benchmarks/ranking.py [--queries 2000] [--gallery 50000] [--k 50]

Both give identical indices (checked here, and by tests/test_metrics.py); the ratio is the speed-up.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from cirlib.metrics import top_k_indices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--gallery", type=int, default=50_000)
    parser.add_argument("--k", type=int, default=50)
    args = parser.parse_args()
    similarity = np.random.default_rng(0).standard_normal((args.queries, args.gallery)).astype(np.float32)

    start = time.perf_counter()
    fast = top_k_indices(similarity, args.k)
    fast_s = time.perf_counter() - start
    start = time.perf_counter()
    plain = np.argsort(-similarity, axis=1, kind="stable")[:, : args.k]
    plain_s = time.perf_counter() - start

    assert np.array_equal(fast, plain)
    print(f"machine: {platform.processor() or platform.machine()}, numpy {np.__version__}")
    print(f"{args.queries} queries x {args.gallery} gallery, top-{args.k}")
    print(f"full stable argsort : {plain_s:7.3f} s")
    print(f"top_k_indices       : {fast_s:7.3f} s")
    print(f"speed-up            : {plain_s / fast_s:7.1f}x")


if __name__ == "__main__":
    main()
