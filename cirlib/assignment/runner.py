"""Run code cells in a fresh kernel, inside a child process with limits: the engine of grading and self-checks.

The parent (:func:`run_cells`) starts ``python .../runner.py JOB RESULT`` (this file as a script, so the child
imports neither torch nor the exercises before its limit is set); the child caps its address space (RLIMIT_AS,
which the kernel it launches inherits), runs the cells one by one under a per-cell timeout, and writes each
cell's outcome. A cell that times out or kills the kernel stops the run: the cells after
it are "not run", never passed. This is a process with limits, not a sandbox: the student's code runs as the
grader's user.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cirlib.util.atomic import write_json  # absolute: the child runs this file as a script

KERNEL = "python3"
"""The kernel the cells run in: ipykernel's, started with the grader's own python (jupyter_client's rule)."""

ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
"""Set to 1 in the kernel: the checks run on one thread anyway, and thread pools reserve address space."""

START_SECONDS = 120
"""What the kernel may take to start, on top of the cells' timeouts, before the parent gives up on the child."""

STOPPED = ("timeout", "dead")
"""Outcomes after which nothing more runs."""

POLL_SECONDS = 0.5
"""How often a waiting cell checks the clock and whether the kernel is alive."""

HARNESS_ERRORS = ("CheckFailed",)
"""Exceptions whose message is already the feedback (cirlib.assignment.checks.CheckFailed)."""


@dataclass(frozen=True)
class Outcome:
    """What happened to one cell: "ok", "error" (message "<exception>: <value>"), "timeout", "dead" (the kernel
    died or did not start; message says which) or "not run"."""

    status: str
    message: str = ""


def run_cells(cells: list[tuple[str, float]], cwd: Path, memory_mb: int | None,
              environment: dict[str, str]) -> list[Outcome]:
    """The outcome of each (source, timeout in seconds) cell, run in order in a fresh kernel (working folder
    ``cwd``, ``environment`` added to this process's) in a child process limited to ``memory_mb`` of address
    space (None: no limit)."""
    env = {**os.environ, **{name: "1" for name in ONE_THREAD}, **environment}
    with tempfile.TemporaryDirectory(prefix="cirlib-assignment-") as folder:
        job, result = Path(folder) / "job.json", Path(folder) / "outcomes.json"
        write_json(job, {"cells": cells, "cwd": str(cwd), "memory_mb": memory_mb})
        try:
            child = subprocess.run([sys.executable, str(Path(__file__).resolve()), str(job), str(result)],
                                   env=env, capture_output=True, text=True,
                                   timeout=START_SECONDS + sum(timeout for _, timeout in cells))
        except subprocess.TimeoutExpired:
            return _stopped(len(cells), Outcome("dead", "the grading process ran past its time limit"))
        if not result.is_file():
            last = (child.stderr.strip().splitlines() or [f"exit status {child.returncode}"])[-1][:300]
            return _stopped(len(cells), Outcome("dead", f"the grading process failed: {last}"))
        return [Outcome(**outcome) for outcome in json.loads(result.read_text())]


def _stopped(count: int, first: Outcome, done: list[Outcome] = ()) -> list[Outcome]:
    """``done``, then ``first``, then "not run" for the rest of ``count`` cells."""
    outcomes = [*done, first]
    return (outcomes + [Outcome("not run")] * count)[:count]


def execute(cells: list[tuple[str, float]], cwd: Path) -> list[Outcome]:
    """Run the (source, timeout) cells in a new kernel in this process's limits; stop at a timeout or a dead
    kernel. jupyter_client's kernel manager directly (nbclient's own engine): the child needs no notebook, and
    importing nbformat's schema validation cost more than starting the kernel (about 3 s a submission)."""
    from jupyter_client.manager import KernelManager

    manager, outcomes = KernelManager(kernel_name=KERNEL), []
    try:
        manager.start_kernel(cwd=str(cwd))
        client = manager.client()
        client.start_channels()
        client.wait_for_ready(timeout=START_SECONDS)
        for source, timeout in cells:
            outcomes.append(_execute_cell(manager, client, source, timeout))
            if outcomes[-1].status in STOPPED:
                break
        client.stop_channels()
    except Exception as error:  # the kernel did not start (e.g. the memory limit) or its channels broke
        first = f"{type(error).__name__}: {error}".strip().splitlines()[0][:300]
        return _stopped(len(cells), Outcome("dead", f"the kernel stopped ({first})"), outcomes)
    finally:
        if manager.has_kernel:
            manager.shutdown_kernel(now=True)
    return outcomes if len(outcomes) == len(cells) else _stopped(len(cells), outcomes[-1], outcomes[:-1])


def _execute_cell(manager: Any, client: Any, source: str, timeout: float) -> Outcome:
    """Run one cell and wait for its reply, watching the clock and the kernel's life."""
    if not source.strip():
        return Outcome("ok")
    # stop_on_error=False: after an error ipykernel would otherwise abort the next request, unrun
    request = client.execute(source, store_history=False, allow_stdin=False, stop_on_error=False)
    deadline = time.monotonic() + timeout
    while True:
        try:
            reply = client.get_shell_msg(timeout=POLL_SECONDS)
        except queue.Empty:
            if not manager.is_alive():
                return Outcome("dead", "the kernel died (a crash, os._exit, or the memory limit: --memory-mb)")
            if time.monotonic() > deadline:
                return Outcome("timeout", f"ran past its limit of {timeout:g} s")
            continue
        if reply["parent_header"].get("msg_id") == request:
            break
    content = reply["content"]
    if content["status"] == "ok":
        return Outcome("ok")
    if content["status"] != "error":  # "aborted": the cell did not run, so it cannot pass
        return Outcome("error", f"the kernel did not run the cell (status {content['status']!r})")
    if content["ename"] in HARNESS_ERRORS:  # the harness's message is the whole feedback
        return Outcome("error", content["evalue"])
    return Outcome("error", f"{content['ename']}: {content['evalue']}")  # never the traceback: it shows the source


def main(argv: list[str]) -> None:
    """The child: cap the address space, run the job's cells, write their outcomes."""
    job = json.loads(Path(argv[0]).read_text())
    if job["memory_mb"]:
        import resource

        limit = int(job["memory_mb"]) << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    outcomes = execute([(source, timeout) for source, timeout in job["cells"]], Path(job["cwd"]))
    write_json(argv[1], [asdict(outcome) for outcome in outcomes])


if __name__ == "__main__":
    main(sys.argv[1:])
