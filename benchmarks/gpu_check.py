"""One GPU check (issue 13): the suite with CUDA visible, the demo and the benchmarks on CUDA, in under 8 minutes.

    python benchmarks/gpu_check.py OUT_DIR [--quick] [--keep-data]
    make gpu-check [OUT=results/gpu-check]

Steps, each a subprocess of this Python with its own time limit and its output tee'd to
``OUT_DIR/<step>.log``: the retrieval benchmark (exact search on CUDA), the extraction benchmark in
float32 and in bfloat16, ``cirlib demo`` on CUDA (its benchmark, cache and runs in ``OUT_DIR/data``,
its tables in ``OUT_DIR/demo``), the training benchmark on the demo's benchmark, the retrieval
benchmark at 1M in float16 (the plain baseline, ExactIndex's torch path and its fused Triton kernel,
each with its ratio to plain), and last the test suite (pytest-xdist when importable; browser test
deselected) in whatever is left of the budget.
The children inherit the environment (PYTHONPATH included, with the repository put first so that
cirlib imports without being installed). All steps share one deadline, so the check ends in time;
a step that runs out of time fails. The end: a one-screen summary (pass/fail, seconds, figures from
the logs), printed and written to ``OUT_DIR/summary.md``, and ``OUT_DIR/environment.txt``.
Exit status 1 if a step failed. Without CUDA it says so in one line and exits 0.

``--quick``: small sizes everywhere and no suite (a short smoke run of the GPU paths).
``OUT_DIR/data`` (about 500 MB) is removed at the end unless ``--keep-data``; an ``OUT_DIR/data`` the
check did not make stops it before it starts (never removed). Only the standard
library and torch are imported here, so that the check starts wherever torch does.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import torch

ROOT = Path(__file__).resolve().parents[1]
NO_CUDA = "no CUDA device: gpu-check has nothing to do"
DATA_MARK = ".written-by-gpu-check"  # in OUT_DIR/data: the check may remove that folder
BUDGET_S = 450          # every step together; the rest of 8 minutes covers the environment report and the summary
MIN_START_S = 5         # a step is not started with less time left
PACKAGES = ("numpy", "pillow", "torchvision", "open_clip_torch", "ftfy", "faiss-cpu", "safetensors", "matplotlib",
            "seaborn", "pandas", "tqdm", "pyyaml", "pytest", "pytest-xdist", "triton", "ipywidgets", "jupytext",
            "nbclient", "nbmake", "playwright")


@dataclass(frozen=True)
class Step:
    """One subprocess of the check: its command, its time limit, how to read its figures from its log, and
    environment variables it needs beyond the check's own."""

    name: str
    command: list[str]
    timeout_s: float
    figures: Callable[[str], str]
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """What one step did: pass or fail, wall seconds, and its figures (or why it failed) in one line."""

    name: str
    passed: bool
    seconds: float
    detail: str


# ---------------------------------------------------------------- reading the logs (pure functions)

PYTEST_COUNT = re.compile(r"(\d+) (passed|failed|skipped|deselected|xfailed|xpassed|errors?|warnings?)\b")
PYTEST_PLURAL = {"error": "errors", "warning": "warnings"}
DEMO_STAGE = re.compile(r"^\[\d+/\d+\] (.+): done in (\d+(?:\.\d+)?) s$", re.MULTILINE)
RATE = re.compile(r"^(\S[^:\n]*?)\s*:\s*(\d[\d,]*(?:\.\d+)?) ([\w-]+/s)\b", re.MULTILINE)
GALLERY = re.compile(r"^([\d,]+) x \d+ gallery")
BACKEND_ROW = re.compile(r"^(\S.*?)\s+(?:-|\d[\d.]*)\s+(\d[\d,]*)\s+(\d\.\d+)\b")


def number(text: str) -> float:
    """A printed number, thousands separators allowed."""
    return float(text.replace(",", ""))


def compact(value: float) -> str:
    """Three significant digits with a k or M suffix (0.264, 45.7, 4.57k, 3.1M): short summary cells."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def parse_pytest(text: str) -> dict[str, int]:
    """Counts from pytest's last summary line ("3 failed, 200 passed, 2 skipped in 9.1s"); {} if there is none."""
    for line in reversed(text.splitlines()):
        counts = PYTEST_COUNT.findall(line)
        if counts and re.search(r" in \d+(\.\d+)?s\b", line):
            return {PYTEST_PLURAL.get(kind, kind): int(n) for n, kind in counts}
    return {}


def parse_demo(text: str) -> dict[str, float]:
    """Seconds per finished demo stage, from its "[i/5] <stage>: done in N s" lines."""
    return {stage: float(seconds) for stage, seconds in DEMO_STAGE.findall(text)}


def parse_rates(text: str) -> dict[str, tuple[float, str]]:
    """``label : value unit/s`` lines (the extraction and training benchmarks) -> {label: (value, unit)}."""
    return {label: (number(value), unit) for label, value, unit in RATE.findall(text)}


def parse_retrieval(text: str) -> list[dict]:
    """The retrieval benchmark's result rows: gallery size, backend, queries/s, recall@10."""
    rows, gallery = [], 0
    for line in text.splitlines():
        if match := GALLERY.match(line):
            gallery = int(number(match.group(1)))
        elif gallery and (match := BACKEND_ROW.match(line)):
            rows.append({"gallery": gallery, "backend": match.group(1), "qps": number(match.group(2)),
                         "recall": float(match.group(3))})
    return rows


def pytest_figures(text: str) -> str:
    """The suite's counts: "3 failed, 200 passed, 12 skipped"."""
    return ", ".join(f"{n} {kind}" for kind, n in parse_pytest(text).items())


def demo_figures(text: str) -> str:
    """Seconds per demo stage (first word of its name) and in all."""
    stages = parse_demo(text)
    parts = [f"{stage.split()[0]} {seconds:.0f} s" for stage, seconds in stages.items()]
    return ", ".join(parts + ([f"total {sum(stages.values()):.0f} s"] if stages else []))


def rate_figures(text: str) -> str:
    """Each path's rate: "per-image loop 412 images/s, batched 9.88k images/s"."""
    return ", ".join(f"{label.split(' (')[0]} {compact(value)} {unit}" for label, (value, unit) in
                     parse_rates(text).items())


def retrieval_figures(text: str) -> str:
    """Queries/s and recall@10 of each backend, per gallery size."""
    sizes: dict[int, list[str]] = {}
    for row in parse_retrieval(text):
        sizes.setdefault(row["gallery"], []).append(f"{row['backend'].split()[0]} {compact(row['qps'])} q/s "
                                                    f"(R@10 {row['recall']:.3f})")
    return "; ".join(f"{compact(gallery)}: " + ", ".join(parts) for gallery, parts in sizes.items())


def last_line(text: str, width: int = 80) -> str:
    """The log's last non-empty line, cut to ``width``: a hint when a failed step printed no figures."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:width] if lines else "no output"


# ---------------------------------------------------------------- the plan


def pytest_command(python: str, workers: int) -> list[str]:
    """The suite, browser test deselected; ``workers`` > 1 spreads whole files over pytest-xdist processes
    (so module fixtures such as the demo run are built once)."""
    parallel = ["-n", str(workers), "--dist", "loadfile"] if workers > 1 else []
    return [python, "-m", "pytest", "-p", "no:benchmark", "-p", "no:cacheprovider", "-q", *parallel,
            "--deselect", "tests/test_browser.py", "tests"]


def suite_env(workers: int, cpus: int) -> dict[str, str]:
    """Torch threads per pytest-xdist process, so that the processes together use the CPUs without
    oversubscribing them; nothing to set for a single process."""
    return {"OMP_NUM_THREADS": str(max(1, cpus // workers))} if workers > 1 else {}


def xdist_workers() -> int:
    """min(8, CPUs) when pytest-xdist is importable, else 1."""
    return min(8, os.cpu_count() or 1) if importlib.util.find_spec("xdist") else 1


# Sizes of the full check and of --quick.
SIZES = {
    False: {"retrieval": "100k,1m", "images": "1000", "demo": "medium", "demo epochs": "4", "triplets": "3000",
            "train epochs": "5", "fused retrieval": "1m"},
    True: {"retrieval": "100k", "images": "300", "demo": "small", "demo epochs": "1", "triplets": "1000",
           "train epochs": "2", "fused retrieval": "100k"},
}


def benchmark(python: str, name: str, *options: str) -> list[str]:
    """A benchmarks/<name>.py command on CUDA."""
    return [python, f"benchmarks/{name}.py", "--device", "cuda", *options]


def plan(out: Path, quick: bool, python: str = sys.executable, workers: int = 1) -> list[Step]:
    """The steps in running order; the suite comes last and may use whatever the others left of the budget.
    The demo's benchmark, cache and runs go to OUT_DIR/data, where the training benchmark reuses them."""
    size, data = SIZES[quick], out / "data"
    cache = ["--cache", str(data / "cache")]
    steps = [
        Step("retrieval", benchmark(python, "retrieval", "--sizes", size["retrieval"], "--backends", "exact"), 60,
             retrieval_figures),
        *(Step(f"extract-{precision}", benchmark(python, "extract", "--images", size["images"],
                                                 "--precision", precision), 60, rate_figures)
          for precision in ("float32", "bfloat16")),
        Step("demo", [python, "-m", "cirlib.cli", "demo", "--device", "cuda", "--size", size["demo"],
                      "--epochs", size["demo epochs"], "--out", str(data / "synth"), *cache,
                      "--runs", str(data / "runs"), "--results", str(out / "demo")], 150, demo_figures),
        Step("train", benchmark(python, "train", "--benchmark", str(data / "synth"), *cache,
                                "--triplets", size["triplets"], "--epochs", size["train epochs"]), 60, rate_figures),
        Step("retrieval-float16", benchmark(python, "retrieval", "--sizes", size["fused retrieval"], "--backends",
                                            "exact;fused", "--dtype", "float16"), 60, retrieval_figures),
    ]
    suite = Step("tests", pytest_command(python, workers), BUDGET_S, pytest_figures,
                 suite_env(workers, os.cpu_count() or 1))
    return steps if quick else steps + [suite]


def child_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The caller's environment, unbuffered, with the repository first on PYTHONPATH (cirlib need not be installed)."""
    path = os.pathsep.join(p for p in (str(ROOT), environ.get("PYTHONPATH", "")) if p)
    return {**environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}


# ---------------------------------------------------------------- running


def tee(source: TextIO, sink: TextIO) -> None:
    """Copy a child's output line by line to the log and to this process's stdout."""
    for line in source:
        try:
            sink.write(line)
        except ValueError:  # the log was closed after a timeout; a straggler still writes
            return
        sys.stdout.write(line)
        sys.stdout.flush()


def kill_group(process: subprocess.Popen) -> None:
    """Kill what is left of a step's process group: all of it on a timeout or when this check is interrupted
    (a step runs in its own session, out of reach of the terminal's Ctrl-C), stragglers otherwise."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def run_step(step: Step, out: Path, env: Mapping[str, str], timeout_s: float) -> Outcome:
    """Run one step in its own process group (killed whole on timeout), output tee'd to OUT_DIR/<step>.log."""
    command = shlex.join(step.command)
    print(f"\n== {step.name} (at most {timeout_s:.0f} s): {command}", flush=True)
    log = out / f"{step.name}.log"
    started = time.monotonic()
    with log.open("w", encoding="utf-8") as sink:
        sink.write(f"$ {command}\n")
        process = subprocess.Popen(step.command, cwd=ROOT, env={**env, **step.env}, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True)
        pump = threading.Thread(target=tee, args=(process.stdout, sink), daemon=True)
        pump.start()
        try:
            returncode, timed_out = process.wait(timeout=timeout_s), False
        except subprocess.TimeoutExpired:
            returncode, timed_out = None, True
        finally:
            kill_group(process)
        pump.join(timeout=10)
    seconds = time.monotonic() - started
    text = log.read_text(encoding="utf-8", errors="replace")
    figures = step.figures(text)
    if timed_out:
        reason = f"timed out after {timeout_s:.0f} s"
    else:
        reason = "" if returncode == 0 else f"exit {returncode}" + ("" if figures else f": {last_line(text)}")
    return Outcome(step.name, not reason, seconds, "; ".join(part for part in (reason, figures) if part))


def run_steps(steps: Sequence[Step], out: Path, env: Mapping[str, str], deadline: float) -> list[Outcome]:
    """Every step in order, each limited to its own timeout and to what is left before ``deadline``."""
    outcomes = []
    for step in steps:
        left = deadline - time.monotonic()
        if left < MIN_START_S:
            outcomes.append(Outcome(step.name, False, 0.0, f"not run: the {BUDGET_S} s budget was spent"))
            continue
        outcomes.append(run_step(step, out, env, min(step.timeout_s, left)))
    return outcomes


# ---------------------------------------------------------------- reporting


def package_version(name: str) -> str:
    """An installed distribution's version (PYTHONPATH included), or "not installed"."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def nvidia_smi() -> str:
    """nvidia-smi's report, or why there is none."""
    if shutil.which("nvidia-smi") is None:
        return "nvidia-smi: not found"
    try:
        done = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "nvidia-smi: no answer within 20 s"
    return done.stdout + done.stderr


def machine_line() -> str:
    """GPU, torch, CUDA and CPUs in one line: the summary's second line."""
    return (f"{torch.cuda.get_device_name(0)} (x{torch.cuda.device_count()}), torch {torch.__version__}, "
            f"CUDA {torch.version.cuda}, {os.cpu_count()} CPUs")


def environment_report() -> str:
    """OUT_DIR/environment.txt: Python, torch, CUDA, each GPU, the packages the steps use, nvidia-smi."""
    gpus = [torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count())]
    lines = [f"python {sys.version.split()[0]} ({sys.executable})", machine_line(),
             f"cuDNN {torch.backends.cudnn.version()}", f"PYTHONPATH={os.environ.get('PYTHONPATH', '')}",
             *(f"cuda:{i}: {gpu.name}, {gpu.total_memory / 2**30:.0f} GiB, compute capability {gpu.major}.{gpu.minor}"
               for i, gpu in enumerate(gpus)),
             "", *(f"{name} {package_version(name)}" for name in PACKAGES), "", nvidia_smi()]
    return "\n".join(lines) + "\n"


def format_summary(outcomes: Sequence[Outcome], machine: str, seconds: float, out: Path, note: str = "") -> str:
    """The one-screen summary: a verdict, the machine, and one table row per step."""
    failed = [o.name for o in outcomes if not o.passed]
    verdict = f"FAIL ({', '.join(failed)})" if failed else "PASS"
    rows = [f"| {o.name} | {'PASS' if o.passed else 'FAIL'} | {o.seconds:.0f} | {o.detail} |" for o in outcomes]
    header = [f"# gpu-check: {verdict}, {len(outcomes) - len(failed)} of {len(outcomes)} steps passed", "",
              f"{machine}; {seconds:.0f} s in all; logs in {out}" + (f"; {note}" if note else ""), ""]
    return "\n".join(header + ["| step | result | s | figures |", "|---|---|---:|---|"] + rows) + "\n"


def claim_data_folder(data: Path) -> Path:
    """``data`` (created with its parents) marked as this check's, so that only a folder the check made is
    ever removed; a folder there without the mark belongs to someone else and stops the check."""
    if data.exists() and not (data / DATA_MARK).is_file():
        raise FileExistsError(f"{data} exists and was not made by gpu-check; choose another OUT_DIR or move it")
    data.mkdir(parents=True, exist_ok=True)
    (data / DATA_MARK).touch()
    return data


def main(argv: Sequence[str] | None = None) -> int:
    """Run the check (see the module docstring); the exit status: 0 if every step passed or there is no CUDA."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="folder for the logs, summary.md and environment.txt")
    parser.add_argument("--quick", action="store_true", help="small sizes and no test suite (a smoke run)")
    parser.add_argument("--keep-data", action="store_true", help="keep OUT_DIR/data (benchmark, cache, runs)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(NO_CUDA)
        return 0
    started = time.monotonic()
    out = args.out_dir.resolve()
    try:
        data = claim_data_folder(out / "data")
    except FileExistsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    (out / "environment.txt").write_text(environment_report(), encoding="utf-8")
    steps = plan(out, args.quick, workers=xdist_workers())
    outcomes = run_steps(steps, out, child_env(os.environ), deadline=started + BUDGET_S)
    if not args.keep_data:
        shutil.rmtree(data, ignore_errors=True)
    summary = format_summary(outcomes, machine_line(), time.monotonic() - started, out,
                             "--quick: small sizes, suite not run" if args.quick else "")
    (out / "summary.md").write_text(summary, encoding="utf-8")
    print("\n" + summary, end="")
    return 0 if all(o.passed for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
