# Quick start:  make reproduce   (Figure 4 left from the shipped optimizer)
#               make test        (the test suite; slow checks: make test-slow)
VENV ?= .venv
PY := $(VENV)/bin/python
FIGURE ?= fig4-left

.PHONY: setup reproduce test test-slow notebooks bench lint

setup:
	bash scripts/setup.sh

reproduce: setup
	$(PY) -m l2l reproduce $(FIGURE)

test:
	bash scripts/setup.sh test
	$(PY) -m pytest

test-slow:
	bash scripts/setup.sh test
	$(PY) -m pytest -m slow || [ $$? -eq 5 ]  # 5: no slow test at the moment

notebooks:
	bash scripts/setup.sh notebooks
	$(PY) notebooks/execute.py

bench: setup
	$(PY) -m l2l bench --json benchmarks/latest.json

lint:
	bash scripts/setup.sh test
	$(VENV)/bin/ruff check l2l tests
