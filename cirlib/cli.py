"""The ``cirlib`` command line: synth, pretrain, zeroshot, train, eval, study, reproduce, demo, assignment."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from cirlib.data.synth.config import SIZES
from cirlib.experiments import paper_numbers
from cirlib.util.config import PRECISIONS
from cirlib.util.errors import CirlibError


def _command(module: str, name: str) -> Callable[[argparse.Namespace], int | None]:
    """The command function ``module.name``, imported only when the command runs, so that parsing (and
    ``cirlib synth``) never imports what another command needs (torch)."""
    return lambda args: getattr(importlib.import_module(module), name)(args)


def _add_synth_arguments(parser: argparse.ArgumentParser, default_size: str, overwrite_flag: bool = True) -> None:
    parser.add_argument("--out", default="data/synth", help="benchmark folder (default: data/synth)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, byte-identical files")
    parser.add_argument("--size", choices=SIZES, default=default_size,
                        help="tiny: tests (seconds); small: notebooks and CI (about half a minute); medium: the "
                             "default benchmark (about 2 minutes)")
    parser.add_argument("--workers", type=int, default=None, help="rendering processes (default: all cores)")
    if overwrite_flag:
        parser.add_argument("--overwrite", action="store_true",
                            help="replace a benchmark built with another configuration (deletes only the files "
                                 "its manifest lists)")
        parser.add_argument("--verify", action="store_true",
                            help="check every file's sha256 against the manifest (sizes are always checked) and "
                                 "repair the files that differ")


def _add_assignment_parser(commands: argparse._SubParsersAction) -> None:
    """`cirlib assignment release|check|grade` (docs/teaching.md)."""
    assignment = commands.add_parser("assignment", help="course assignments: release, self-check, grade "
                                                        "(docs/teaching.md)")
    actions = assignment.add_subparsers(dest="action", required=True)
    release = actions.add_parser("release", help="student notebooks (solutions as stubs, hidden tests removed, "
                                                 "outputs cleared) and manifest.json")
    release.add_argument("notebooks", nargs="*", help="instructor notebooks or py:percent scripts (default: "
                                                      "notebooks/NN_*.ipynb)")
    release.add_argument("--out", required=True, help="folder for the release (new, empty, or an earlier release)")
    release.set_defaults(run=_command("cirlib.assignment.commands", "release"))

    check = actions.add_parser("check", help="a student's self-check: run the notebook's checks in a fresh kernel; "
                                             "exit status 0 only when all pass")
    check.add_argument("notebook", help="the student's notebook")
    check.add_argument("--timeout", type=float, default=60, help="seconds per cell (default: 60)")
    check.set_defaults(run=_command("cirlib.assignment.commands", "check"))

    grade = actions.add_parser("grade", help="grade a class: every student's notebooks with all checks, hidden "
                                             "ones included, each in its own process")
    grade.add_argument("submissions", help="folder with one sub-folder per student id holding the notebooks")
    grade.add_argument("--out", required=True, help="folder for students/<id>.json, class.csv, pass_rates.csv")
    grade.add_argument("--instructor", nargs="+", default=None,
                       help="the instructor notebooks (default: notebooks/NN_*.ipynb)")
    grade.add_argument("--timeout", type=float, default=60,
                       help="seconds per answer and check cell (default: 60; setup cells get 600)")
    grade.add_argument("--memory-mb", type=int, default=8192,
                       help="address-space limit of each submission's kernel in MB (default: 8192: importing torch "
                            "and open_clip reserves about 4.5 GB of address space; 0: no limit)")
    grade.add_argument("--variant-seed-from", choices=("student_id",), default=None,
                       help="derive each student's check inputs from their id (default: the same inputs for all)")
    grade.add_argument("--workers", type=int, default=1, help="submissions graded at once (default: 1)")
    grade.set_defaults(run=_command("cirlib.assignment.commands", "grade"))


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="synthclip", help="bundled name, model folder, or open_clip architecture")
    parser.add_argument("--pretrained", default=None, help="open_clip pretrained tag or local checkpoint file")
    parser.add_argument("--preprocess", default=None, choices=("clip", "targetpad", "squarepad"),
                        help="image preprocessing (default: the model's own)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--cache", default="data/cache", help="feature cache folder")
    parser.add_argument("--results", default="results", help="where results JSON files go")


def _add_quick_gelu_argument(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--quick-gelu", default=None, action=argparse.BooleanOptionalAction,
                        help=f"build the CLIP with QuickGELU (OpenAI's weights were trained with it); default: {default}")


def _add_run_arguments(parser: argparse.ArgumentParser, checkpoint: str) -> None:
    """--resume and --overwrite, for a command that trains into a run folder (cirlib.train.run_folder)."""
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--resume", action="store_true",
                        help=f"continue the run in --out from <out>/{checkpoint} (a finished run is reused as is); "
                             "a config that differs in more than where and on what it runs is refused "
                             "(cirlib.train.run_folder.IGNORED_FIELDS)")
    choice.add_argument("--overwrite", action="store_true",
                        help="replace the run in --out: delete the files this command writes there (other files "
                             "stay), then train from the start")


def _add_precision_argument(parser: argparse.ArgumentParser, default: str | None) -> None:
    parser.add_argument("--precision", choices=PRECISIONS, default=default,
                        help="training precision; auto (the default): bf16 autocast on CUDA, float32 on CPU; "
                             "float32: full precision on any device (closest to a CPU run); bfloat16/float16: "
                             "autocast on any device. Evaluation is always exact float32")


def _add_on_missing_argument(parser: argparse.ArgumentParser, default: str | None, unset: str = "") -> None:
    """--on-missing: what images a dataset lists but lacks do (``unset`` says what the default None means)."""
    parser.add_argument("--on-missing", choices=("error", "skip"), default=default,
                        help="images a dataset lists but the disk lacks: error (stop, naming them) or skip (leave "
                             "out the queries and triplets that need them; the result file counts them, and recall "
                             f"is then over fewer queries than the paper's){unset}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cirlib", description="Composed image retrieval lab")
    parser.add_argument("--debug", action="store_true",
                        help="on an error, show the traceback instead of the one-line message (before the command: "
                             "cirlib --debug reproduce ...)")
    commands = parser.add_subparsers(dest="command", required=True)
    synth = commands.add_parser("synth", help="write the synthetic FashionIQ / CIRR / CIRCO benchmark")
    _add_synth_arguments(synth, default_size="medium")
    synth.set_defaults(run=_command("cirlib.apps.commands", "synth"))

    zeroshot = commands.add_parser("zeroshot", help="zero-shot baselines (image, text, sum) on the synthetic benchmark")
    zeroshot.add_argument("--out", default="data/synth", help="benchmark folder (built by cirlib synth)")
    _add_model_arguments(zeroshot)
    zeroshot.add_argument("--feature-precision", choices=PRECISIONS[1:], default="float32",
                          help="precision of the encoder's features: float32 (default) gives the same numbers on "
                               "every device; bfloat16/float16 extract faster on GPUs and change the numbers slightly")
    _add_on_missing_argument(zeroshot, "error")
    _add_quick_gelu_argument(zeroshot, "what the pretrained tag's (or model folder's) config says")
    zeroshot.set_defaults(run=_command("cirlib.apps.commands", "zeroshot"))

    pretrain = commands.add_parser("pretrain", help="train a small CLIP on the synthetic pretraining stream")
    pretrain.add_argument("--config", default=None, help="YAML with PretrainConfig fields")
    pretrain.add_argument("--out", default=None, help="run folder (overrides the config)")
    pretrain.add_argument("--steps", type=int, default=None)
    pretrain.add_argument("--device", default=None)
    _add_precision_argument(pretrain, None)
    _add_run_arguments(pretrain, "checkpoint.safetensors")
    pretrain.set_defaults(run=_command("cirlib.apps.commands", "pretrain"))

    train = commands.add_parser("train", help="train a model from a YAML config (its `kind` picks the job)")
    train.add_argument("--config", nargs="+", required=True, help="YAML file(s), e.g. configs/synth_combiner_cirr.yaml")
    train.add_argument("--seeds", type=int, nargs="+", default=None,
                       help="train every config with each seed and print the mean ± std table")
    train.add_argument("--results", default="results", help="where the --seeds table JSON goes")
    train.add_argument("--out", default=None,
                       help="run folder (overrides the config); with --seeds, the folder for all the runs")
    train.add_argument("--epochs", type=int, default=None)
    train.add_argument("--seed", type=int, default=None)
    train.add_argument("--device", default=None)
    # Read as text and checked by the config, exactly as the YAML's values are (errors name "command line").
    train.add_argument("--batch-size", default=None, help="global batch size (overrides the config)")
    train.add_argument("--lr", default=None, help="peak learning rate (overrides the config)")
    train.add_argument("--warmup-steps", default=None, help="steps of linear warmup (overrides the config)")
    train.add_argument("--lr-schedule", default=None,
                       help="after warmup: cosine (decays to 0) or constant (CLIP4Cir's stage 2); overrides the config")
    train.add_argument("--selection-metric", default=None,
                       help="validation metric that picks best.safetensors (overrides the config): FashionIQ avg; "
                            "CIRR Avg or CLIP4Cir's 'arithmetic mean', 'harmonic mean', 'geometric mean'")
    _add_precision_argument(train, None)
    _add_run_arguments(train, "last.safetensors (inversion kinds: checkpoint.safetensors)")
    _add_on_missing_argument(train, None, "; default: the config's on_missing field (error if absent)")
    train.set_defaults(run=_command("cirlib.apps.commands", "train"))

    evaluate = commands.add_parser("eval", help="evaluate a trained fusion checkpoint on its validation split")
    evaluate.add_argument("--run", dest="run_dir", required=True,
                          help="run folder of `cirlib train`, or a checkpoint file")
    evaluate.add_argument("--checkpoint", choices=("best", "last"), default="best")
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--cache", default="data/cache",
                          help="feature cache folder (never the one stored in the checkpoint's config)")
    evaluate.add_argument("--results", default="results", help="where the results JSON goes")
    _add_on_missing_argument(evaluate, None, "; default: what the run was trained with")
    evaluate.set_defaults(run=_command("cirlib.apps.commands", "evaluate"))

    study = commands.add_parser("study", help="the MoE gating study: routing variants x seeds, trained and analysed "
                                              "(cirlib.experiments.moe_study)")
    study.add_argument("--config", required=True, help="a `kind: moe_study` YAML (configs/studies/moe_gating.yaml)")
    study.add_argument("--seeds", type=int, nargs="+", default=None, help="override the config's seeds")
    study.add_argument("--runs", default=None, help="override where the training runs go")
    study.add_argument("--results", default=None, help="override where the tables and figure go")
    study.set_defaults(run=_command("cirlib.apps.commands", "study"))

    reproduce = commands.add_parser("reproduce", help="a paper setting on a real dataset, beside the paper's numbers")
    reproduce.add_argument("--dataset", required=True, choices=paper_numbers.PAPER_DATASETS)
    reproduce.add_argument("--method", required=True, choices=paper_numbers.METHODS)
    reproduce.add_argument("--data-root", required=True, help="the dataset's folder (layouts: data/README.md)")
    reproduce.add_argument("--split", default="val", choices=("val", "test1", "test"),
                           help="val (default): evaluated; CIRR test1, CIRCO test: the test-server submission files "
                                "are written to --results")
    reproduce.add_argument("--model", default=None,
                           help="open_clip architecture (with --pretrained) or model folder; default: the "
                                "checkpoint's, else the paper's (WeiMoCIR ViT-L-14, CLIP4Cir/CLIP-CD RN50x4)")
    reproduce.add_argument("--pretrained", default=None,
                           help="open_clip pretrained tag or checkpoint file; none for a model folder; default: the "
                                "checkpoint's, else the paper's weights for --model (WeiMoCIR: OpenCLIP LAION-2B, "
                                "e.g. laion2b_s32b_b82k for ViT-L-14; CLIP4Cir/CLIP-CD: openai)")
    reproduce.add_argument("--preprocess", default=None, choices=("clip", "targetpad", "squarepad"),
                           help="default: the checkpoint's, else the paper's (WeiMoCIR: clip; CLIP4Cir, CLIP-CD, "
                                "MoE: targetpad)")
    _add_quick_gelu_argument(reproduce, "the checkpoint's, else what the pretrained tag's config says")
    reproduce.add_argument("--alpha", type=float, default=0.8, help="WeiMoCIR's α (paper: 0.8 with CLIP)")
    reproduce.add_argument("--beta", type=float, default=0.1, help="WeiMoCIR's β (paper: 0.1 with CLIP)")
    reproduce.add_argument("--captions", default=None, help="WeiMoCIR gallery captions (file; FashionIQ: folder)")
    reproduce.add_argument("--checkpoint", default=None,
                           help="best.safetensors of a `cirlib train` run; its model, pretrained, preprocess and "
                                "quick_gelu are the defaults, and other values are refused")
    _add_on_missing_argument(reproduce, "error")
    reproduce.add_argument("--cache", default="data/cache")
    reproduce.add_argument("--device", default="auto")
    reproduce.add_argument("--results", default="results",
                           help="where the result file (reproduce_<dataset>_<method>_<split>_<settings hash>.json) "
                                "and the submission files go")
    reproduce.set_defaults(run=_command("cirlib.apps.commands", "reproduce"))

    demo = commands.add_parser("demo", help="the main job, end to end, on the synthetic benchmark (cirlib.apps.demo)")
    _add_synth_arguments(demo, default_size="medium", overwrite_flag=False)
    _add_model_arguments(demo)
    demo.add_argument("--epochs", type=int, default=4, help="training epochs of the Combiner and the MoE")
    demo.add_argument("--training-seed", type=int, default=0)
    demo.add_argument("--variant", choices=("slides", "code"), default="slides", help="WeiMoCIR's scoring")
    demo.add_argument("--configs", default="configs", help="folder of synth_<fusion>_<dataset>.yaml")
    demo.add_argument("--runs", default="runs/demo", help="where the training runs go")
    _add_precision_argument(demo, "auto")
    demo.set_defaults(run=_command("cirlib.apps.commands", "demo"))
    _add_assignment_parser(commands)
    return parser


def one_line(error: Exception) -> str:
    """The message the CLI prints for ``error``: a user's error whole, on one line; anything else its type and first
    line, with the way to the traceback."""
    if isinstance(error, (CirlibError, FileNotFoundError, ValueError)):
        return " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    first = next((line.strip() for line in str(error).splitlines() if line.strip()), "")[:300]
    return f"{type(error).__name__}: {first} (unexpected: rerun with cirlib --debug ... for the traceback)"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; an error is one line on stderr and exit status 2 (``--debug``: the traceback)."""
    args = build_parser().parse_args(argv)
    try:
        status = args.run(args)  # a command may return its exit status (assignment check: 1 when a check fails)
    except KeyboardInterrupt:
        print("\ninterrupted; rerun the same command to resume (finished work is kept)", file=sys.stderr)
        return 130
    except Exception as error:
        if args.debug:
            raise
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2
    return status if isinstance(status, int) else 0


if __name__ == "__main__":
    sys.exit(main())
