"""benchmarks/gpu_check.py on a CPU: the no-CUDA exit, the log parsers, the plan, the step runner, the summary."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


gpu_check = load_script()

PYTEST_LOGS = {
    "== 12 passed in 3.21s ==": {"passed": 12},
    "3 failed, 200 passed, 12 skipped, 1 deselected, 2 xfailed, 1 xpassed, 4 warnings in 101.93s (0:01:41)":
        {"failed": 3, "passed": 200, "skipped": 12, "deselected": 1, "xfailed": 2, "xpassed": 1, "warnings": 4},
    "!!!! Interrupted: 1 error during collection !!!!\n1 error in 0.14s": {"errors": 1},
    "5 passed, 1 warning, 2 errors in 7.00s": {"passed": 5, "warnings": 1, "errors": 2},
    "no tests ran in 0.01s": {},
    "tests/test_a.py ....\n[gw3] 10 passed so far": {},  # killed before its summary
}

DEMO_LOG = """demo config: {"size": "medium"}

[1/5] benchmark
render: 100%|##########| 3000/3000
[1/5] benchmark: done in 14 s

[2/5] features and zero-shot baselines
[2/5] features and zero-shot baselines: done in 9 s

[3/5] WeiMoCIR α/β sweep
[3/5] WeiMoCIR α/β sweep: done in 1 s
"""

EXTRACT_LOG = """model synthclip@a735c2863a36c1b2 on NVIDIA H200 (cuda:0), bfloat16, 1000 images
per-image loop :     412.5 images/s
batched        :   9,876.5 images/s (batch 256)
speed-up       :      23.9x
"""

TRAIN_LOG = """{"epoch": 1, "train loss": 7.15, "lr": 0.00075, "pseudo": false, "seconds": 0.34}
on the fly (encode every batch) :    0.264 epochs/s (3.78 s/epoch)
cached features (train_fusion)  :   12.977 epochs/s (0.08 s/epoch, mean of 5)
speed-up                        :     49.2x
"""

RETRIEVAL_LOG = """machine: x86_64, torch 2.11.0 (16 threads), faiss 1.9.0 (16 threads), device NVIDIA H200

100,000 x 512 gallery (random), 65,536 queries, top-50
backend                 build s   queries/s  recall@10  settings
plain matmul+topk             -   1,234,567      1.000  chunks of 1024 queries
exact                       0.1   2,345,678      0.998  dtype=float16  (1.90x plain)

1,000,000 x 512 gallery (random), 65,536 queries, top-50
backend                 build s   queries/s  recall@10  settings
plain matmul+topk             -     123,456      1.000  chunks of 1024 queries
exact                       0.9     234,567      0.997  dtype=float16  (1.90x plain)
HNSW32                  skipped above --hnsw-max 10,000

total 31 s
"""


def python_step(name: str, code: str, timeout_s: float = 30, env: dict | None = None) -> object:
    return gpu_check.Step(name, [sys.executable, "-c", code], timeout_s, gpu_check.pytest_figures, env or {})


def test_without_cuda_it_says_so_in_one_line_and_exits_0(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "out")], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == gpu_check.NO_CUDA + "\n"
    assert not (tmp_path / "out").exists()


def test_main_without_cuda_in_process(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(gpu_check.torch.cuda, "is_available", lambda: False)
    assert gpu_check.main([str(tmp_path / "out"), "--quick"]) == 0
    assert capsys.readouterr().out.splitlines() == [gpu_check.NO_CUDA]


@pytest.mark.parametrize("log", PYTEST_LOGS)
def test_pytest_summary_counts(log):
    assert gpu_check.parse_pytest("collected 300 items\n" + log) == PYTEST_LOGS[log]


def test_pytest_figures_keep_the_order_of_the_summary():
    text = "3 failed, 200 passed, 12 skipped, 4 warnings in 101.93s"
    assert gpu_check.pytest_figures(text) == "3 failed, 200 passed, 12 skipped, 4 warnings"


def test_demo_stage_times():
    assert gpu_check.parse_demo(DEMO_LOG) == {"benchmark": 14.0, "features and zero-shot baselines": 9.0,
                                             "WeiMoCIR α/β sweep": 1.0}
    assert gpu_check.demo_figures(DEMO_LOG) == "benchmark 14 s, features 9 s, WeiMoCIR 1 s, total 24 s"
    assert gpu_check.demo_figures("[1/5] benchmark\nKilled") == ""


def test_extraction_and_training_rates():
    assert gpu_check.parse_rates(EXTRACT_LOG) == {"per-image loop": (412.5, "images/s"),
                                                  "batched": (9876.5, "images/s")}
    assert gpu_check.parse_rates(TRAIN_LOG) == {"on the fly (encode every batch)": (0.264, "epochs/s"),
                                                "cached features (train_fusion)": (12.977, "epochs/s")}
    assert gpu_check.rate_figures(TRAIN_LOG) == "on the fly 0.264 epochs/s, cached features 13 epochs/s"
    assert gpu_check.rate_figures(EXTRACT_LOG) == "per-image loop 412 images/s, batched 9.88k images/s"


def test_retrieval_rows():
    rows = gpu_check.parse_retrieval(RETRIEVAL_LOG)
    assert [(r["gallery"], r["backend"], r["qps"], r["recall"]) for r in rows] == [
        (100_000, "plain matmul+topk", 1_234_567, 1.0), (100_000, "exact", 2_345_678, 0.998),
        (1_000_000, "plain matmul+topk", 123_456, 1.0), (1_000_000, "exact", 234_567, 0.997)]
    assert gpu_check.retrieval_figures(RETRIEVAL_LOG) == (
        "100k: plain 1.23M q/s (R@10 1.000), exact 2.35M q/s (R@10 0.998); "
        "1M: plain 123k q/s (R@10 1.000), exact 235k q/s (R@10 0.997)")


def test_the_plan_fits_the_budget_and_keeps_its_data_in_the_out_dir(tmp_path):
    assert gpu_check.BUDGET_S + 30 <= 8 * 60
    for quick in (False, True):
        steps = gpu_check.plan(tmp_path, quick, python="python", workers=8)
        assert all(step.timeout_s <= gpu_check.BUDGET_S for step in steps)
        assert [s.name for s in steps][:5] == ["retrieval", "extract-float32", "extract-bfloat16", "demo", "train"]
        demo = steps[3].command
        for flag in ("--out", "--cache", "--runs", "--results"):
            assert Path(demo[demo.index(flag) + 1]).is_relative_to(tmp_path)
        assert all("cuda" in step.command for step in steps[:5])
    tests = gpu_check.plan(tmp_path, False, python="python", workers=8)[-1].command
    assert tests[-1] == "tests" and tests[tests.index("--deselect") + 1] == "tests/test_browser.py"
    assert tests[tests.index("-n") + 1] == "8"
    assert "-n" not in gpu_check.pytest_command("python", 1)
    assert gpu_check.suite_env(8, 16) == {"OMP_NUM_THREADS": "2"} and gpu_check.suite_env(1, 16) == {}


def test_children_get_the_repository_first_on_pythonpath():
    env = gpu_check.child_env({"PYTHONPATH": "/wheels", "HOME": "/h"})
    assert env["PYTHONPATH"] == f"{gpu_check.ROOT}{os.pathsep}/wheels"
    assert env["HOME"] == "/h" and env["PYTHONUNBUFFERED"] == "1"
    assert gpu_check.child_env({})["PYTHONPATH"] == str(gpu_check.ROOT)


def test_a_step_is_logged_and_its_figures_read(tmp_path, capsys):
    outcome = gpu_check.run_step(python_step("ok", "print('4 passed, 1 skipped in 0.1s')"), tmp_path, os.environ, 30)
    assert outcome.passed and outcome.detail == "4 passed, 1 skipped"
    assert "4 passed, 1 skipped in 0.1s" in (tmp_path / "ok.log").read_text()
    assert "4 passed" in capsys.readouterr().out  # tee'd
    failed = gpu_check.run_step(python_step("bad", "import os, sys; print(os.environ['BOOM']); sys.exit(3)",
                                            env={"BOOM": "boom"}), tmp_path, os.environ, 30)
    assert not failed.passed and failed.detail == "exit 3: boom"


def test_a_step_that_runs_out_of_time_is_killed_with_its_children_and_fails(tmp_path):
    # the grandchild holds the output pipe: unless it is killed too, the log's reader waits for it
    code = ("import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            "print('started', flush=True); time.sleep(60)")
    started = time.monotonic()
    outcome = gpu_check.run_step(python_step("slow", code), tmp_path, os.environ, 1)
    assert time.monotonic() - started < 8
    assert not outcome.passed and outcome.detail.startswith("timed out after 1 s")
    assert "started" in (tmp_path / "slow.log").read_text()


def test_steps_share_one_deadline(tmp_path):
    steps = [python_step("first", "pass"), python_step("second", "pass")]
    outcomes = gpu_check.run_steps(steps, tmp_path, os.environ, deadline=time.monotonic() + gpu_check.MIN_START_S + 3)
    assert outcomes[0].passed
    assert [o.passed for o in gpu_check.run_steps(steps, tmp_path, os.environ, time.monotonic())] == [False, False]
    assert "not run" in gpu_check.run_steps(steps[:1], tmp_path, os.environ, time.monotonic())[0].detail


def test_the_summary_names_every_step_and_each_failure(tmp_path):
    outcomes = [gpu_check.Outcome("retrieval", True, 20.4, "100k: exact 2.35M q/s"),
                gpu_check.Outcome("demo", False, 150.0, "timed out after 150 s; benchmark 14 s"),
                gpu_check.Outcome("tests", True, 201.0, "300 passed, 9 skipped")]
    summary = gpu_check.format_summary(outcomes, "NVIDIA H200 (x1)", 371.4, tmp_path)
    assert summary.startswith("# gpu-check: FAIL (demo), 2 of 3 steps passed")
    assert "| demo | FAIL | 150 | timed out after 150 s; benchmark 14 s |" in summary
    assert "| retrieval | PASS | 20 |" in summary and "| tests | PASS | 201 |" in summary
    assert "NVIDIA H200 (x1); 371 s in all" in summary and len(summary.splitlines()) < 25
    passing = gpu_check.format_summary(outcomes[::2], "GPU", 1.0, tmp_path, note="--quick")
    assert passing.startswith("# gpu-check: PASS, 2 of 2 steps passed") and "FAIL" not in passing


def test_only_a_data_folder_the_check_made_is_claimed(tmp_path):
    """The check removes OUT_DIR/data at the end: a folder of someone else's there must stop it, untouched."""
    theirs = tmp_path / "theirs" / "data"
    theirs.mkdir(parents=True)
    (theirs / "thesis.tex").write_text("x")
    with pytest.raises(FileExistsError, match="theirs/data exists and was not made by gpu-check"):
        gpu_check.claim_data_folder(theirs)
    assert (theirs / "thesis.tex").read_text() == "x" and not (theirs / gpu_check.DATA_MARK).exists()
    fresh = gpu_check.claim_data_folder(tmp_path / "new" / "data")
    assert (fresh / gpu_check.DATA_MARK).is_file()
    assert gpu_check.claim_data_folder(fresh) == fresh  # a rerun after --keep-data reuses its own folder
