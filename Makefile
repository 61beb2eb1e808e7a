# The two commands of the README (both create .venv and install the package on first use), and gpu-check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean gpu-check

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cirlib demo

test: $(STAMP)
	$(BIN)/python -m pytest

# The suite, the demo and the benchmarks on a CUDA machine in under 8 minutes (benchmarks/gpu_check.py); logs and
# summary.md in $(OUT). No install step: a lent GPU machine has no .venv and brings its packages on PYTHONPATH.
OUT ?= results/gpu-check
GPU_PYTHON := $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON))

gpu-check:
	$(GPU_PYTHON) benchmarks/gpu_check.py $(OUT)

clean:
	rm -rf $(VENV) data/synth results .pytest_cache
