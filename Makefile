# Two commands for a fresh machine: `make demo` (the main job on built-in data) and `make test`.
# Each creates .venv and installs what it needs; torch is pinned to the CPU wheel first so that
# no dependency pulls a multi-GB CUDA build.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.focalkit-installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[cli,test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/focalkit compare

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) focalkit-report .pytest_cache .ruff_cache
