"""Notebooks: paired with their py:percent scripts, stored without outputs, and executed (small) quietly.

Executed in a stand-in for the repository root (a temporary folder shared by the module's notebooks, with a copy of
``configs/``): each notebook takes its ROOT from the kernel's working directory, ``<root>/notebooks``, so the small
benchmark, the feature cache and the runs go there, never into the checkout's ``data/`` or ``runs/`` (a last cell,
added for the run, checks that ROOT); later notebooks reuse what earlier ones built, as they do in a checkout.

Skipped where the notebook stack is missing (jupytext and nbformat for the pairing; nbclient, ipykernel
and ipywidgets to execute), as on a lent GPU machine that brings only the library's own dependencies.

Quiet means no executed output holds a warning (a stderr stream, "Warning" text), a training-log line
(a JSON row {"epoch": ...} / {"step": ...}, "<name> config: ...", "resumed after ...", "... trained in ...")
or a progress bar, except that a cell tagged ``progress`` (``# %% tags=["progress"]`` in the script) may show
bars: the notebooks tag only the cells whose wait is long (rendering the benchmark, training).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from cirlib.inversion import Pic2WordConfig, train_pic2word
from cirlib.train.stage2 import FusionTrainConfig, train_fusion
from cirlib.train.triplets import TripletFeatures
from tests.helpers import make_notebook_root, tiny_model_dir

REPOSITORY = Path(__file__).parent.parent
NOTEBOOKS = sorted((REPOSITORY / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PROGRESS_TAG = "progress"
WARNING = re.compile(r"Warning|WARNING")
TRAINING_LOG = re.compile(r'^\s*\{"(epoch|step)"|^\s*[\w-]+ config: [{\[(]|^resumed after |\btrained in \d+ s\b',
                          re.MULTILINE)
PROGRESS_BAR = re.compile(r"\d+%\||\|\s*\d+/\d+ \[|\d+it \[")  # tqdm: "  40%|####  | 4/10 [00:01<..." or "12it [..."


def cells(notebook) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells]


def output_text(output) -> str:
    """The text a person sees in one output: a stream's text, or a display's plain-text and HTML forms."""
    if output.output_type == "stream":
        return output.text
    data = output.get("data", {})
    return "\n".join(data[kind] for kind in ("text/plain", "text/html") if isinstance(data.get(kind), str))


def output_noise(output, bars_allowed: bool) -> list[str]:
    """What is noisy in one output: "warning", "training log", "progress bar", "stderr"."""
    text = output_text(output)
    bar = bool(PROGRESS_BAR.search(text))
    found = [kind for kind, pattern in (("warning", WARNING), ("training log", TRAINING_LOG)) if pattern.search(text)]
    if bar and not bars_allowed:
        found.append("progress bar")
    if output.get("name") == "stderr" and not (bar and bars_allowed):  # a tagged cell's bar may come on stderr
        found.append("stderr")
    return found


def telling_line(text: str) -> str:
    """The first line of ``text`` that shows noise (else its first non-empty line), for a failure message."""
    lines = [line for line in text.splitlines() if line.strip()] or [""]
    return next((line for line in lines if any(p.search(line) for p in (WARNING, TRAINING_LOG, PROGRESS_BAR))),
                lines[0])


def notebook_noise(notebook) -> list[str]:
    """One line per noisy output of an executed notebook: the cell, what is noisy, and the line that shows it."""
    lines = []
    for index, cell in enumerate(notebook.cells):
        allowed = PROGRESS_TAG in cell.get("metadata", {}).get("tags", [])
        for output in cell.get("outputs", []):
            found = output_noise(output, allowed)
            if found:
                lines.append(f"cell {index} ({', '.join(found)}): {telling_line(output_text(output))[:150]}")
    return lines


def _fusion_run(out: Path, verbose: bool, resume: bool = False) -> None:
    """Two epochs of a small Combiner on random triplets (seeded), validated by a constant metric."""
    generator = torch.Generator().manual_seed(0)
    data = TripletFeatures(torch.randn(40, 16, generator=generator), torch.arange(20), torch.arange(20, 40),
                           torch.randn(20, 1, 16, generator=generator))
    config = FusionTrainConfig(fusion="combiner", fusion_options={"projection_dim": 8, "hidden_dim": 8}, epochs=2,
                               batch_size=10, selection_metric="R@1", device="cpu", out=str(out))
    train_fusion(config, data, lambda model: {"R@1": 0.0}, resume=resume, progress=verbose, verbose=verbose)


def test_the_quiet_switches_the_notebooks_use_silence_the_training_log_the_command_line_keeps(tmp_path, capfd):
    _fusion_run(tmp_path / "quiet", verbose=False)
    _fusion_run(tmp_path / "quiet", verbose=False, resume=True)  # a finished run, reused without a word
    assert capfd.readouterr() == ("", "")
    _fusion_run(tmp_path / "loud", verbose=True)
    _fusion_run(tmp_path / "loud", verbose=True, resume=True)
    logged = [line for line in capfd.readouterr().out.splitlines() if TRAINING_LOG.search(line)]
    assert [line[:13] for line in logged] == ["train config:", '{"epoch": 1, ', '{"epoch": 2, ', "resumed after",
                                             "train config:"]
    folder, _ = tiny_model_dir(tmp_path / "model")
    common = dict(model=str(folder), cache=str(tmp_path / "cache"), train_pairs=16, batch_size=8, steps=4, log_every=2,
                  device="cpu", workers=1)
    train_pic2word(Pic2WordConfig(**common, out=str(tmp_path / "p2w-quiet")), verbose=False)
    quiet = capfd.readouterr()
    train_pic2word(Pic2WordConfig(**common, out=str(tmp_path / "p2w-loud")))
    loud = capfd.readouterr().out
    assert quiet.out == "" and not TRAINING_LOG.search(quiet.err)  # progress bars (stderr) stay: the wait is long
    assert len(TRAINING_LOG.findall(loud)) == 4  # the config, steps 2 and 4, "trained in"


def test_noise_is_found_in_every_form_and_bars_only_pass_in_tagged_cells():
    nbformat = pytest.importorskip("nbformat")
    new = nbformat.v4
    bar = new.new_output("display_data", {"text/plain": "pic2word:  40%|####      | 24/60 [00:01<00:02, 20it/s]",
                                          "application/vnd.jupyter.widget-view+json": {"model_id": "x"}})
    notebook = new.new_notebook(cells=[
        new.new_code_cell("a", outputs=[new.new_output("stream", name="stdout", text="R@10 84.7\n"),
                                        new.new_output("execute_result", {"text/plain": "VBox(children=(...))"})]),
        new.new_code_cell("b", outputs=[new.new_output("stream", name="stderr", text="plots.py:53: UserWarning: "
                                                       "Tight layout not applied.\n")]),
        new.new_code_cell("c", outputs=[new.new_output("stream", name="stdout", text='table\n{"epoch": 1, "R@1": 2}\n'),
                                        new.new_output("stream", name="stdout", text="train config: {}\n"),
                                        new.new_output("stream", name="stdout",
                                                       text="resumed after epoch 6 of 6 from runs/x: reused\n")]),
        new.new_code_cell("d", outputs=[bar]),
        new.new_code_cell("e", metadata={"tags": [PROGRESS_TAG]},
                          outputs=[bar, new.new_output("stream", name="stderr", text="OTI:  100%|#| 1/1 [00:04<00:00]"),
                                   new.new_output("stream", name="stdout", text='{"step": 20, "loss": 3.6}\n')]),
        new.new_markdown_cell('{"epoch": 1} in prose is no output'),
    ])
    assert notebook_noise(notebook) == [
        "cell 1 (warning, stderr): plots.py:53: UserWarning: Tight layout not applied.",
        'cell 2 (training log): {"epoch": 1, "R@1": 2}',
        "cell 2 (training log): train config: {}",
        "cell 2 (training log): resumed after epoch 6 of 6 from runs/x: reused",
        "cell 3 (progress bar): pic2word:  40%|####      | 24/60 [00:01<00:02, 20it/s]",
        'cell 4 (training log): {"step": 20, "loss": 3.6}',
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_paired_with_its_script_and_stripped(path):
    jupytext, nbformat = pytest.importorskip("jupytext"), pytest.importorskip("nbformat")
    script = path.with_suffix(".py")
    assert script.is_file(), f"{path.name} has no paired {script.name}"
    assert cells(nbformat.read(path, as_version=4)) == cells(jupytext.read(script)), \
        f"{path.name} and {script.name} differ: run `jupytext --sync {script}`"
    notebook = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") and cell.get("execution_count") is None
               for cell in notebook.cells if cell.cell_type == "code"), f"{path.name} is stored with outputs"


@pytest.fixture(scope="module")
def notebook_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporary stand-in for the repository root, shared by the module's notebooks, with an empty ``notebooks/``."""
    return make_notebook_root(tmp_path_factory.mktemp("notebook-root"))


def test_the_notebook_root_copies_the_configs_and_the_named_notebooks_only(tmp_path):
    """The helper behind this module's root and the browser test's (which skips where Chromium is missing)."""
    root = make_notebook_root(tmp_path / "root", ["notebooks/04_alpha_beta_sweeps.ipynb"])
    def files(folder: Path) -> dict[Path, bytes]:
        return {path.relative_to(folder): path.read_bytes() for path in folder.rglob("*") if path.is_file()}

    assert files(root / "configs") == files(REPOSITORY / "configs") != {}
    assert [path.name for path in (root / "notebooks").iterdir()] == ["04_alpha_beta_sweeps.ipynb"]
    assert (root / "notebooks" / "04_alpha_beta_sweeps.ipynb").read_bytes() == NOTEBOOKS[3].read_bytes()
    assert sorted(path.name for path in root.iterdir()) == ["configs", "notebooks"]  # no data/ or runs/ yet


def root_check(nbformat, root: Path):
    """A last cell that fails unless the notebook's ROOT, under which it writes data/ and runs/, is ``root``."""
    return nbformat.v4.new_code_cell(f"assert str(ROOT.resolve()) == {str(root.resolve())!r}, f'ROOT is {{ROOT}}'")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_quietly_on_the_small_benchmark(path, notebook_root):
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(path, as_version=4)
    assert any("SMALL = True" in cell.source for cell in notebook.cells), "notebooks default to the small setting"
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")   # the python3 kernel
    pytest.importorskip("ipywidgets")  # notebook 04's explorer
    notebook.cells.append(root_check(nbformat, notebook_root))
    nbclient.NotebookClient(notebook, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(notebook_root / "notebooks")}}).execute()
    noise = notebook_noise(notebook)
    assert not noise, f"{path.name} printed warnings, training logs or progress bars:\n" + "\n".join(noise)
