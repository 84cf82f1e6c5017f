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

.PHONY: help install graphviz git-filter chromium demo test browser-test bench accuracy notebooks clean

help:
	@echo "make demo   - run the whole pipeline on EmoDB (quick preset) into results/"
	@echo "make test   - run the test suite"
	@echo "make browser-test - run notebooks 01-05 in JupyterLab in headless Chromium (installs chromium)"
	@echo "make bench  - print the speed benchmarks"
	@echo "make accuracy - UA/WA of emoDARTS and the baselines on EmoDB and EMOVO, all folds"
	@echo "make notebooks - rebuild notebooks/*.ipynb from their py:percent sources"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

# JupyterLab from the venv loads emokit.jupyter_git (a saved run leaves git status
# clean) and asks no question about Jupyter news; a wheel install ships these
# files, an editable one does not.
LAB_CONFIG := $(VENV)/etc/jupyter/jupyter_server_config.d/emokit.json
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.json
$(LAB_CONFIG): jupyter-config/jupyter_server_config.d/emokit.json $(VENV)/.installed
	install -D -m 644 $< $@
$(LAB_SETTINGS): jupyter-config/lab-settings/overrides.json $(VENV)/.installed
	install -D -m 644 $< $@

install: $(VENV)/.installed $(LAB_CONFIG) $(LAB_SETTINGS) graphviz git-filter

# Notebooks run in JupyterLab keep their outputs on disk; git reads them through
# nbstripout (.gitattributes), so `git diff` shows nothing after a run. A kernel
# also fills in language_info's details: stripped too (its name stays).
NB_RUN_KEYS := $(addprefix metadata.language_info.,codemirror_mode file_extension mimetype nbconvert_exporter pygments_lexer version)
git-filter: $(VENV)/.installed
	@if git rev-parse --git-dir >/dev/null 2>&1; then \
	  git config filter.nbstripout.clean "'$(abspath $(VENV))/bin/nbstripout' --keep-id --extra-keys '$(NB_RUN_KEYS)'"; \
	  git config filter.nbstripout.smudge cat; \
	fi

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

# JupyterLab by hand, in headless Chromium: Debian's chromium and its driver.
chromium:
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium and chromium-driver with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
	      || echo "could not install chromium; the browser test will be skipped"; \
	  else \
	    echo "the browser test needs chromium and chromedriver: sudo apt-get install chromium chromium-driver"; \
	  fi; }

browser-test: install chromium
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -m browser -p no:cacheprovider -rs $(PYTEST_ARGS) tests/test_browser.py

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
