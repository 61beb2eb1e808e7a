"""Run the curated one-line mutants of mutants/mutants.yaml and report which ones the named tests fail to catch.

Each mutant is applied to a fresh temporary copy of ``cirlib/`` and ``tests/`` (the other top-level entries the
tests read, such as ``configs/``, are linked, never ``data/`` or ``runs/``), and its named tests run there with
``python -m pytest -x -q -p no:cacheprovider`` and ``PYTHONPATH`` set to the copy. A test failure (or a collection
error, or running past the timeout) kills the mutant; all tests passing lets it survive. Before the mutants, every
named test set runs once unmutated: a mutant cannot count as killed by a test that fails anyway.
Exit status: 0 when every mutant is killed and every baseline passes, else 1 (2: a bad list or option).

Usage: python mutants/run.py [--only NAME ...] [--list] [--workers N] [--timeout S] [--no-baseline]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
LIST = Path(__file__).with_name("mutants.yaml")
COPIED = ("cirlib", "tests")
NOT_LINKED = {".git", ".venv", "data", "runs", "results", "test-artifacts", "mutants", "cirlib.egg-info"}
PYTEST = ("-m", "pytest", "-x", "-q", "-p", "no:cacheprovider")
KILLING_CODES = {1, 2}  # pytest: tests failed; collection errors (an import the mutant broke)


@dataclass(frozen=True)
class Mutant:
    """One line of one file replaced, and the tests that must notice."""

    name: str
    file: str
    original: str
    replacement: str
    why: str
    tests: tuple[str, ...]
    k: str | None = None


@dataclass(frozen=True)
class Outcome:
    name: str
    status: str  # killed, survived, error (the tests could not run), baseline-failed
    seconds: float
    detail: str = ""


def load_mutants(path: Path = LIST) -> list[Mutant]:
    """The list, each entry checked for its fields and for a name used once."""
    entries = yaml.safe_load(path.read_text())
    mutants, seen = [], set()
    for position, entry in enumerate(entries):
        missing = {"name", "file", "original", "replacement", "why", "tests"} - set(entry)
        if missing or entry["name"] in seen:
            sys.exit(f"{path}: entry {position + 1} ({entry.get('name')}) lacks {sorted(missing)} or repeats a name; "
                     "fix the entry")
        seen.add(entry["name"])
        mutants.append(Mutant(entry["name"], entry["file"], entry["original"], entry["replacement"], entry["why"],
                              tuple(entry["tests"]), entry.get("k")))
    return mutants


def mutated_text(text: str, mutant: Mutant) -> str:
    """``text`` with the one line whose stripped text is ``mutant.original`` replaced (indentation kept)."""
    lines = text.splitlines(keepends=True)
    hits = [i for i, line in enumerate(lines) if line.strip() == mutant.original.strip()]
    if len(hits) != 1:
        raise ValueError(f"{mutant.name}: the original line occurs {len(hits)} times in {mutant.file}, expected once; "
                         "fix its text in mutants.yaml")
    line = lines[hits[0]]
    indent = line[:len(line) - len(line.lstrip())]
    lines[hits[0]] = indent + mutant.replacement.strip() + "\n"
    return "".join(lines)


def make_copy(folder: Path) -> None:
    """cirlib/ and tests/ copied into ``folder``; the other top-level entries linked, as the tests may read them."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in COPIED:
        shutil.copytree(ROOT / name, folder / name, ignore=ignore)
    for entry in ROOT.iterdir():
        if entry.name not in NOT_LINKED and entry.name not in COPIED:
            (folder / entry.name).symlink_to(entry)


def run_tests(folder: Path, mutant: Mutant, timeout: float) -> tuple[int | None, str]:
    """(pytest's exit code or None on timeout, the output's tail) of the mutant's tests in the copy."""
    command = [sys.executable, *PYTEST, *mutant.tests] + (["-k", mutant.k] if mutant.k else [])
    env = os.environ | {"PYTHONPATH": str(folder), "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s"
    lines = (done.stdout + done.stderr).strip().splitlines()
    return done.returncode, lines[-1] if lines else ""


def attempt(mutant: Mutant, timeout: float, baseline: bool = False) -> Outcome:
    """Apply the mutant (or nothing, for a baseline) in a temporary copy and run its tests there."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cirlib-mutant-") as temp:
        folder = Path(temp)
        make_copy(folder)
        if not baseline:
            target = folder / mutant.file
            target.write_text(mutated_text(target.read_text(), mutant))
        code, tail = run_tests(folder, mutant, timeout)
    seconds = time.perf_counter() - started
    if baseline:
        return Outcome(mutant.name, "baseline-ok" if code == 0 else "baseline-failed", seconds, tail)
    if code is None or code in KILLING_CODES:
        return Outcome(mutant.name, "killed", seconds, tail)
    return Outcome(mutant.name, "survived" if code == 0 else "error", seconds, tail)


def run_all(pool: ThreadPoolExecutor, mutants: list[Mutant], timeout: float, baseline: bool) -> list[Outcome]:
    """Every attempt, in list order, with one progress line per attempt as it finishes."""
    futures = [pool.submit(attempt, mutant, timeout, baseline) for mutant in mutants]
    for done, future in enumerate(as_completed(futures), 1):
        outcome = future.result()
        print(f"[{done}/{len(futures)}] {outcome.name}: {outcome.status} ({outcome.seconds:.1f} s)", flush=True)
    return [future.result() for future in futures]


def baselines(mutants: list[Mutant]) -> list[Mutant]:
    """One unmutated run per distinct test selection."""
    unique = {(m.tests, m.k): m for m in mutants}
    return list(unique.values())


def print_table(outcomes: list[Outcome], mutants: dict[str, Mutant]) -> None:
    width = max(len(o.name) for o in outcomes)
    print(f"{'mutant':<{width}}  {'result':<15} {'seconds':>7}  file")
    for outcome in outcomes:
        where = mutants[outcome.name].file if outcome.name in mutants else ""
        print(f"{outcome.name:<{width}}  {outcome.status:<15} {outcome.seconds:7.1f}  {where}")
        if outcome.status not in ("killed", "baseline-ok"):
            print(f"{'':<{width}}  -> {outcome.detail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", default=[], help="run only this mutant (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the mutants and their tests, run nothing")
    parser.add_argument("--workers", type=int, default=2, help="mutants run at once (default 2)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per test run (default 300)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated runs of the test sets")
    args = parser.parse_args(argv)
    mutants = load_mutants()
    unknown = sorted(set(args.only) - {m.name for m in mutants})
    if unknown:
        parser.error(f"unknown mutant(s) {', '.join(unknown)}; see --list")
    chosen = [m for m in mutants if not args.only or m.name in args.only]
    for mutant in chosen:  # every original line must be found once before anything runs
        mutated_text((ROOT / mutant.file).read_text(), mutant)
    if args.list:
        for mutant in chosen:
            print(f"{mutant.name}: {mutant.file}: {mutant.why} [{' '.join(mutant.tests)}"
                  f"{' -k ' + repr(mutant.k) if mutant.k else ''}]")
        return 0
    started = time.perf_counter()
    with ThreadPoolExecutor(max(1, args.workers)) as pool:
        checks = [] if args.no_baseline else run_all(pool, baselines(chosen), args.timeout, True)
        outcomes = run_all(pool, chosen, args.timeout, False)
    failed_baselines = [o for o in checks if o.status != "baseline-ok"]
    print_table(failed_baselines + outcomes, {m.name: m for m in chosen})
    survivors = [o for o in outcomes if o.status != "killed"]
    print(f"{len(outcomes) - len(survivors)} of {len(outcomes)} mutants killed, {len(survivors)} not; "
          f"{len(failed_baselines)} failing baseline(s); {time.perf_counter() - started:.0f} s")
    return 1 if survivors or failed_baselines else 0


if __name__ == "__main__":
    sys.exit(main())
