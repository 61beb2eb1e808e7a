"""The ``cirlib`` command line: synth, pretrain, zeroshot, demo."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .analysis.benchmark import format_summary, prepare_benchmark
from .atomic import write_json
from .config import load_config
from .data.errors import DatasetError
from .data.synth.config import preset


def _add_synth_arguments(parser: argparse.ArgumentParser, default_size: str, overwrite_flag: bool = True) -> None:
    parser.add_argument("--out", default="data/synth", help="benchmark folder (default: data/synth)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, byte-identical files")
    parser.add_argument("--size", choices=("small", "medium"), default=default_size,
                        help="small: tests and CI notebooks (seconds); medium: the default benchmark (about 2 minutes)")
    parser.add_argument("--workers", type=int, default=None, help="rendering processes (default: all cores)")
    if overwrite_flag:
        parser.add_argument("--overwrite", action="store_true",
                            help="replace a benchmark built with another configuration")


def _synth(args: argparse.Namespace) -> dict:
    config = preset(args.size, seed=args.seed)
    print(f"synth config: {json.dumps(config.to_json())}", flush=True)
    start = time.perf_counter()
    manifest = prepare_benchmark(args.out, config, workers=args.workers, overwrite=args.overwrite)
    print(format_summary(manifest))
    print(f"\nbenchmark ready in {args.out} ({time.perf_counter() - start:.0f} s); datacards: {args.out}/*/datacard.md")
    return manifest


def _zeroshot(args: argparse.Namespace) -> None:
    # Imported here so that `cirlib synth` does not pay for importing torch.
    from .encoders import FeatureCache, describe, load_encoder
    from .evaluation import benchmark_features, evaluate_methods, format_results
    from .fusion import ZERO_SHOT_BASELINES

    encoder = load_encoder(args.model, pretrained=args.pretrained, preprocess=args.preprocess, device=args.device)
    run = {"model": args.model, "pretrained": args.pretrained, "encoder": describe(encoder),
           "benchmark": str(args.out), "cache": str(args.cache)}
    print(f"zero-shot config: {json.dumps(run)}", flush=True)
    features = benchmark_features(encoder, FeatureCache(args.cache), args.out)
    results = evaluate_methods(features, ZERO_SHOT_BASELINES)
    print("\n" + format_results(results))
    write_json(Path(args.results) / "zero_shot.json", {"config": run, "results": results})
    print(f"\nsaved {args.results}/zero_shot.json")


def _pretrain(args: argparse.Namespace) -> None:
    from .train.pretrain import PretrainConfig, pretrain

    config = load_config(PretrainConfig, args.config, out=args.out, steps=args.steps, device=args.device)
    pretrain(config, resume=args.resume)


def _demo(args: argparse.Namespace) -> None:
    print("CIR Lab demo: synthetic benchmark -> synthclip features -> zero-shot baselines.\n"
          f"Expected time on 2 CPU cores: about 3 minutes for size={args.size} on the first run, seconds after.\n",
          flush=True)
    args.overwrite = True  # the demo owns its folder: data from another configuration or generator is rebuilt
    _synth(args)
    print()
    _zeroshot(args)


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="synthclip", help="bundled name, model folder, or open_clip architecture")
    parser.add_argument("--pretrained", default=None, help="open_clip pretrained tag or local checkpoint file")
    parser.add_argument("--preprocess", default=None, choices=("clip", "targetpad", "squarepad"),
                        help="image preprocessing (default: the model's own)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--cache", default="data/cache", help="feature cache folder")
    parser.add_argument("--results", default="results", help="where results JSON files go")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cirlib", description="Composed image retrieval lab")
    commands = parser.add_subparsers(dest="command", required=True)
    synth = commands.add_parser("synth", help="write the synthetic FashionIQ / CIRR / CIRCO benchmark")
    _add_synth_arguments(synth, default_size="medium")
    synth.set_defaults(run=_synth)

    zeroshot = commands.add_parser("zeroshot", help="zero-shot baselines (image, text, sum) on the synthetic benchmark")
    zeroshot.add_argument("--out", default="data/synth", help="benchmark folder (built by cirlib synth)")
    _add_model_arguments(zeroshot)
    zeroshot.set_defaults(run=_zeroshot)

    pretrain = commands.add_parser("pretrain", help="train a small CLIP on the synthetic pretraining stream")
    pretrain.add_argument("--config", default=None, help="YAML with PretrainConfig fields")
    pretrain.add_argument("--out", default=None, help="run folder (overrides the config)")
    pretrain.add_argument("--steps", type=int, default=None)
    pretrain.add_argument("--device", default=None)
    pretrain.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.safetensors")
    pretrain.set_defaults(run=_pretrain)

    demo = commands.add_parser("demo", help="the main job, end to end, on the synthetic benchmark")
    _add_synth_arguments(demo, default_size="medium", overwrite_flag=False)
    _add_model_arguments(demo)
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (DatasetError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
