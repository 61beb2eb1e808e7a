# The two commands of the README (both create .venv and install the package on first use), `lab` for the notebooks,
# and gpu-check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install lab kernel git-filter clean gpu-check mutants

install: $(STAMP) kernel git-filter

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cirlib demo

test: install
	$(BIN)/python -m pytest

# The notebooks (notebooks/README.md). NB_PYTHON is the python that has cirlib: the venv's, or with NB_PYTHON=python
# the active conda environment's. The `cirlab` kernel (the one the notebooks ask for) is registered inside that
# environment (--sys-prefix), so that another checkout, or CI's clone, never starts this checkout's python. The git
# filter strips outputs on `git add`; --keep-id keeps the stored cell ids, language_info is what a kernel adds.
NB_PYTHON ?= $(BIN)/python
NB_DEPS := $(if $(filter $(BIN)/python,$(NB_PYTHON)),$(STAMP))
KERNEL := cirlab
KERNEL_DISPLAY_NAME := CIR Lab
NBSTRIPOUT_ARGS := --keep-id --extra-keys metadata.language_info
LAB_ARGS ?=

kernel: $(NB_DEPS)
	$(NB_PYTHON) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "$(KERNEL_DISPLAY_NAME)"

# nbstripout --install writes the filter with no options, so its clean and textconv commands are set again with them.
git-filter: $(NB_DEPS)
	@if git rev-parse --git-dir >/dev/null 2>&1; then \
	    py="$$($(NB_PYTHON) -c 'import sys; print(sys.executable)')" && \
	    "$$py" -m nbstripout --install --attributes .gitattributes && \
	    git config filter.nbstripout.clean "\"$$py\" -m nbstripout $(NBSTRIPOUT_ARGS)" && \
	    git config diff.ipynb.textconv "\"$$py\" -m nbstripout $(NBSTRIPOUT_ARGS) -t" && \
	    echo "git filter: notebooks are stripped of outputs on git add ($$py -m nbstripout)"; \
	else echo "not a git checkout: no notebook filter to install"; fi

# JupyterLab in notebooks/ (as root it needs --allow-root); more options with LAB_ARGS="--port 8899 --no-browser".
lab: install
	$(BIN)/jupyter lab notebooks $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# The suite, the demo and the benchmarks on a CUDA machine in under 8 minutes (benchmarks/gpu_check.py); logs and
# summary.md in $(OUT). No install step: a lent GPU machine has no .venv and brings its packages on PYTHONPATH.
OUT ?= results/gpu-check
GPU_PYTHON := $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON))

gpu-check:
	$(GPU_PYTHON) benchmarks/gpu_check.py $(OUT)

clean:
	rm -rf $(VENV) data/synth results .pytest_cache

# The curated one-line mutants of mutants/mutants.yaml, each applied to a temporary copy; a survivor fails the target.
# About 12.5 min on 2 cores, so not in CI: the suite (make test, CI) runs five of them, tests/test_mutants_subset.py.
# MUTANTS_ARGS="--only NAME" runs one, "--list" lists them, "--workers 4" runs four at once (default 2).
MUTANTS_ARGS ?=

mutants: $(STAMP)
	$(BIN)/python mutants/run.py $(MUTANTS_ARGS)
