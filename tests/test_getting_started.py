"""A clean first hour with the notebooks: `python -m cirlib`, `make lab` and the kernel it registers, and the stored
notebooks staying what git holds when JupyterLab (through jupytext) opens, runs and saves them.

The Makefile is read through make itself, so what is checked is what `make lab` does. The notebook checks skip where
jupytext or nbstripout is missing (a lent GPU machine brings only the library's own dependencies); the Makefile ones
where make or git is.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cirlib.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def run(command: list[str] | str, cwd: Path = ROOT, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120, **kwargs)


def make(*args: str, cwd: Path = ROOT) -> str:
    """Make's output for ``make -s ARGS`` on the repository's Makefile (skips where make is missing)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    result = run(["make", "-s", "--no-print-directory", "-f", str(ROOT / "Makefile"), *args], cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout


def make_variable(name: str) -> str:
    return make("--eval", "print-%: ; @echo '$($*)'", f"print-{name}").strip()


def stored_copy(folder: Path) -> dict[Path, bytes]:
    """The notebooks and their scripts (each notebook first, as a checkout writes them), jupytext.toml, .gitattributes
    and .gitignore copied into folder; returns each copy's bytes."""
    (folder / "notebooks").mkdir(parents=True)
    sources = [ROOT / "jupytext.toml", ROOT / ".gitattributes", ROOT / ".gitignore"]
    sources += [path for notebook in NOTEBOOKS for path in (notebook, notebook.with_suffix(".py"))]
    copies = {}
    for source in sources:
        copy = folder / source.relative_to(ROOT)
        copy.write_bytes(source.read_bytes())
        copies[copy] = copy.read_bytes()
    return copies


def save_as_jupyterlab_does(folder: Path, outputs: bool) -> None:
    """Open and save every notebook through jupytext's contents manager, JupyterLab's server side; with outputs, as
    after running each code cell in the kernel (execution counts, a printed line, the kernel's language_info)."""
    jupytext = pytest.importorskip("jupytext")
    manager = jupytext.TextFileContentsManager(root_dir=str(folder))
    language_info = pytest.importorskip("ipykernel.ipkernel").IPythonKernel.language_info
    for notebook in NOTEBOOKS:
        path = f"notebooks/{notebook.name}"
        model = manager.get(path)
        if outputs:
            run_every_cell(model["content"], language_info)
        manager.save(model, path)


def run_every_cell(notebook, language_info: dict) -> None:
    nbformat = pytest.importorskip("nbformat")
    notebook.metadata["language_info"] = language_info
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    for count, cell in enumerate(code, start=1):
        cell.execution_count = count
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"cell {count}\n")]


def git(folder: Path, *args: str) -> subprocess.CompletedProcess:
    settings = ["-c", "user.name=test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"]
    return run(["git", *settings, *args], cwd=folder)


def test_python_m_cirlib_is_the_cirlib_command(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    shown = run([sys.executable, "-m", "cirlib", "--help"])
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == build_parser().format_help()


def test_every_notebook_asks_for_the_kernel_make_registers():
    jupytext = pytest.importorskip("jupytext")
    kernel = {"display_name": make_variable("KERNEL_DISPLAY_NAME"), "language": "python",
              "name": make_variable("KERNEL")}
    assert kernel["name"] == "cirlab"
    for notebook in NOTEBOOKS:
        assert json.loads(notebook.read_text())["metadata"]["kernelspec"] == kernel, notebook.name
        assert jupytext.read(notebook.with_suffix(".py")).metadata["kernelspec"] == kernel, notebook.name


def test_make_lab_registers_the_kernel_installs_the_filter_and_starts_jupyterlab_in_notebooks():
    planned = make("-n", "lab", "LAB_ARGS=--port 8899")
    assert "-m ipykernel install --sys-prefix --name cirlab" in planned
    assert "-m nbstripout --install --attributes .gitattributes" in planned
    lab = re.search(r"^\S*/jupyter lab notebooks( --allow-root)? --port 8899$", planned, re.MULTILINE)
    assert lab, planned
    assert bool(lab.group(1)) == (os.getuid() == 0)


def test_jupytext_rewrites_the_stored_notebooks_byte_for_byte(tmp_path):
    stored = stored_copy(tmp_path)
    save_as_jupyterlab_does(tmp_path, outputs=False)
    changed = [path.name for path, content in stored.items() if path.read_bytes() != content]
    assert not changed, f"opening and saving rewrites {changed}: run `jupytext --sync` with the repo's jupytext.toml"


def test_running_and_saving_the_notebooks_changes_nothing_git_stores(tmp_path):
    pytest.importorskip("nbstripout")
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    stored = stored_copy(tmp_path)
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "stored notebooks"]):
        assert git(tmp_path, *command).returncode == 0
    make("git-filter", f"NB_PYTHON={sys.executable}", cwd=tmp_path)
    save_as_jupyterlab_does(tmp_path, outputs=True)
    with_outputs = [path for path in stored if path.suffix == ".ipynb" and path.read_bytes() != stored[path]]
    assert len(with_outputs) == len(NOTEBOOKS)
    # git runs the filter on add: nothing is staged. (One notebook: nbstripout takes about 2 s to start.)
    first, others = with_outputs[0], with_outputs[1:]
    assert git(tmp_path, "add", str(first)).returncode == 0
    assert git(tmp_path, "diff", "--cached", "--quiet").returncode == 0, f"git add {first.name} stages a change"
    # The same filter command, run on the others in place, gives back the stored bytes; the scripts never changed.
    clean = git(tmp_path, "config", "filter.nbstripout.clean").stdout.strip()
    assert run(f"{clean} {' '.join(shlex.quote(str(path)) for path in others)}", tmp_path, shell=True).returncode == 0
    changed = [path.name for path, content in stored.items() if path != first and path.read_bytes() != content]
    assert not changed, f"the filter does not give back the stored {changed}"


def test_the_notebooks_readme_lists_every_notebook():
    readme = (ROOT / "notebooks" / "README.md").read_text()
    missing = [notebook.stem for notebook in NOTEBOOKS if f"`{notebook.stem}`" not in readme]
    assert not missing and len(NOTEBOOKS) == 6, missing
