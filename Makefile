# emokit: two commands on a fresh machine -- `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# Where corpora live: the shared copy when it exists, else ./data.
EMOKIT_DATA ?= $(if $(wildcard ../shared/datasets),$(abspath ../shared/datasets),$(abspath ./data))
export EMOKIT_DATA
# Two cores: two pytest-xdist workers with one BLAS/OpenMP thread each (more
# threads than cores make OpenMP spin and run many times slower).
TEST_WORKERS ?= 2
# Extra options of `emokit demo`, e.g. DEMO_ARGS=--workers=1 (default: one worker per core).
DEMO_ARGS ?=

.PHONY: help install graphviz demo test bench accuracy notebooks clean

help:
	@echo "make demo   - run the whole pipeline on EmoDB (quick preset) into results/"
	@echo "make test   - run the test suite"
	@echo "make bench  - print the speed benchmarks"
	@echo "make accuracy - UA/WA of emoDARTS and the baselines on EmoDB and EMOVO, all folds"
	@echo "make notebooks - rebuild notebooks/*.ipynb from their py:percent sources"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed graphviz

# graphviz's `dot` binary draws the genome cell graphs.
graphviz:
	@command -v dot >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing graphviz (dot) with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null; \
	  else \
	    echo "emokit needs graphviz's 'dot' binary: sudo apt-get install graphviz | conda install -c conda-forge graphviz | brew install graphviz"; \
	    exit 1; \
	  fi; }

demo: install
	@[ -d "$(EMOKIT_DATA)/emodb/wav" ] || $(PY) -m emokit.cli download emodb --data "$(EMOKIT_DATA)"
	$(PY) -m emokit.cli demo --data "$(EMOKIT_DATA)" --out results $(DEMO_ARGS)

test: install
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -n $(TEST_WORKERS) --durations=15 $(PYTEST_ARGS)

bench: install
	$(PY) benchmarks/features.py
	$(PY) benchmarks/search_step.py

accuracy: install
	$(PY) studies/accuracy.py

# The .py files (jupytext py:percent) are the notebooks' source; the .ipynb
# files, kept without outputs, are what papermill runs.
notebooks: install
	$(VENV)/bin/jupytext --update --to ipynb notebooks/[0-9][0-9]_*.py

clean:
	rm -rf $(VENV) results .pytest_cache
