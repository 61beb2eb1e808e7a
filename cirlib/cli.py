"""The ``cirlib`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from .analysis.benchmark import format_summary, prepare_benchmark
from .data.errors import DatasetError
from .data.synth.config import preset


def _add_synth_arguments(parser: argparse.ArgumentParser, default_size: str, overwrite_flag: bool = True) -> None:
    parser.add_argument("--out", default="data/synth", help="output folder (default: data/synth)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, byte-identical files")
    parser.add_argument("--size", choices=("small", "medium"), default=default_size,
                        help="small: tests and CI notebooks (seconds); medium: the default benchmark (about 2 minutes)")
    parser.add_argument("--workers", type=int, default=None, help="rendering processes (default: all cores)")
    if overwrite_flag:
        parser.add_argument("--overwrite", action="store_true",
                            help="replace a benchmark built with another configuration")


def _synth(args: argparse.Namespace) -> None:
    config = preset(args.size, seed=args.seed)
    print(f"config: {config.to_json()}", flush=True)
    start = time.perf_counter()
    manifest = prepare_benchmark(args.out, config, workers=args.workers, overwrite=args.overwrite)
    print(format_summary(manifest))
    print(f"\nwritten to {args.out} in {time.perf_counter() - start:.0f} s; datacards: {args.out}/*/datacard.md")


def _demo(args: argparse.Namespace) -> None:
    print("CIR Lab demo: build the synthetic benchmark and report its statistics and sanity baselines.\n"
          f"Expected time on 2 CPU cores: about 2 minutes for size={args.size} on the first run, seconds after.\n",
          flush=True)
    args.overwrite = True  # the demo owns its folder: data from another configuration or generator is rebuilt
    _synth(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cirlib", description="Composed image retrieval lab")
    commands = parser.add_subparsers(dest="command", required=True)
    synth = commands.add_parser("synth", help="write the synthetic FashionIQ / CIRR / CIRCO benchmark")
    _add_synth_arguments(synth, default_size="medium")
    synth.set_defaults(run=_synth)
    demo = commands.add_parser("demo", help="the main job, end to end, on the synthetic benchmark")
    _add_synth_arguments(demo, default_size="medium", overwrite_flag=False)
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except DatasetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
