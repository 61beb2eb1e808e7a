"""The command line's dispatch: each command runs its own function, imported only when it runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cirlib import cli
from cirlib.apps import commands
from cirlib.assignment import commands as assignment_commands

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = [(["synth"], commands, "synth"),
            (["zeroshot"], commands, "zeroshot"),
            (["pretrain"], commands, "pretrain"),
            (["train", "--config", "a.yaml"], commands, "train"),
            (["eval", "--run", "runs/x"], commands, "evaluate"),
            (["study", "--config", "s.yaml"], commands, "study"),
            (["reproduce", "--dataset", "cirr", "--method", "sum", "--data-root", "cirr"], commands, "reproduce"),
            (["demo"], commands, "demo"),
            (["assignment", "release", "--out", "release"], assignment_commands, "release"),
            (["assignment", "check", "nb.ipynb"], assignment_commands, "check"),
            (["assignment", "grade", "submissions", "--out", "grades"], assignment_commands, "grade")]


@pytest.mark.parametrize("argv, module, name", COMMANDS, ids=[" ".join(c[0][:2]) for c in COMMANDS])
def test_each_command_runs_its_function_and_returns_its_status(argv, module, name, monkeypatch):
    called = []
    monkeypatch.setattr(module, name, lambda args: called.append(args) or 7)
    assert cli.main(argv) == 7
    assert len(called) == 1 and called[0].command == argv[0]


def test_parsing_and_the_synth_command_import_neither_torch_nor_open_clip():
    code = ("import sys\nfrom cirlib.cli import build_parser\nimport cirlib.apps.commands\n"
            "build_parser().parse_args(['synth', '--size', 'tiny'])\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'open_clip')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.strip() == "[]"
