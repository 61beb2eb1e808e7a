"""Ctrl-C: one line ("interrupted; rerun the same command to resume"), no traceback from the command or its
worker processes, and the rerun finishes the job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from cirlib import cli
from cirlib.apps import commands
from cirlib.util.workers import process_pool


def _interrupt_handler(_: int) -> bool:
    return signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_ctrl_c_in_any_command_is_one_line_and_exit_status_130(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(commands, "synth", interrupted)
    assert cli.main(["synth", "--out", "unused"]) == 130
    assert capsys.readouterr().err.strip() == "interrupted; rerun the same command to resume (finished work is kept)"


def test_pool_workers_leave_ctrl_c_to_their_parent():
    # else each busy worker may print its own KeyboardInterrupt traceback before the parent stops it
    with process_pool(2) as pool:
        assert pool.map(_interrupt_handler, range(4)) == [True] * 4
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.skipif(os.name != "posix", reason="process groups and SIGINT")
def test_ctrl_c_during_a_parallel_synth_build_prints_no_traceback_and_the_rerun_completes(tmp_path):
    out = tmp_path / "bench"
    command = [sys.executable, "-m", "cirlib.cli", "synth", "--out", str(out), "--size", "tiny", "--workers", "2"]
    # a terminal's Ctrl-C signals the whole foreground process group: the command and its rendering workers
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    deadline = time.monotonic() + 60
    while not len(list(out.rglob("*.png"))) > 100 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, "the build finished before it could be interrupted"
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert "interrupted; rerun the same command to resume" in stderr
    assert not (out / "manifest.json").exists()
    rerun = subprocess.run(command + ["--verify"], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert (out / "manifest.json").is_file()
