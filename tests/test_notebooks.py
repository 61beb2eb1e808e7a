"""Notebooks: paired with their py:percent scripts, stored without outputs, and executed (small).

Skipped where the notebook stack is missing (jupytext and nbformat for the pairing; nbclient, ipykernel
and ipywidgets to execute), as on a lent GPU machine that brings only the library's own dependencies.
"""

from __future__ import annotations

from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")
nbformat = pytest.importorskip("nbformat")

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def cells(notebook) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_paired_with_its_script_and_stripped(path):
    script = path.with_suffix(".py")
    assert script.is_file(), f"{path.name} has no paired {script.name}"
    assert cells(nbformat.read(path, as_version=4)) == cells(jupytext.read(script)), \
        f"{path.name} and {script.name} differ: run `jupytext --sync {script}`"
    notebook = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") and cell.get("execution_count") is None
               for cell in notebook.cells if cell.cell_type == "code"), f"{path.name} is stored with outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_the_small_benchmark(path):
    notebook = nbformat.read(path, as_version=4)
    assert any("SMALL = True" in cell.source for cell in notebook.cells), "notebooks default to the small setting"
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")   # the python3 kernel
    pytest.importorskip("ipywidgets")  # notebook 04's explorer
    nbclient.NotebookClient(notebook, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}).execute()
