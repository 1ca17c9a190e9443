# Quick start:  make reproduce   (Figure 4 left from the shipped optimizer)
#               make test        (the test suite; slow checks: make test-slow)
VENV ?= .venv
PY := $(VENV)/bin/python
FIGURE ?= fig4-left

.PHONY: setup reproduce test test-slow notebooks notebook-results bench lint mnist-optimizer \
	cifar10-optimizer cifar-subset-optimizers

setup:
	bash scripts/setup.sh

reproduce: setup
	$(PY) -m l2l reproduce $(FIGURE)

test:
	bash scripts/setup.sh test
	$(VENV)/bin/ruff check l2l tests
	$(PY) -m pytest

test-slow:
	bash scripts/setup.sh test
	$(PY) -m pytest -m slow || [ $$? -eq 5 ]  # 5: no slow test at the moment

# re-execute the notebooks (NB=02 for one) from the stored results in notebooks/results/
NB ?=
notebooks:
	bash scripts/setup.sh notebooks
	$(PY) notebooks/execute.py $(NB)

# recompute the notebooks' stored results (hours for 04), then save the notebooks with them
notebook-results:
	bash scripts/setup.sh notebooks
	$(PY) notebooks/execute.py --refresh $(NB)
	$(PY) notebooks/execute.py $(NB)

# the shipped optimizers from scratch, each by its recipe (l2l/recipes/NAME.toml; every stage in
# turn, earlier stages in subfolders); see l2l/pretrained/README.md for what each takes
RUNS ?= runs
mnist-optimizer: setup
	$(PY) -m l2l train --recipe mnist --out $(RUNS)/mnist

cifar10-optimizer: setup
	$(PY) -m l2l train --recipe cifar10 --out $(RUNS)/cifar10

# pretrained:cifar5, cifar5_sub, cifar2, cifar2_sub (the LSTM-sub ones see only the labels they
# are not tested on)
cifar-subset-optimizers: setup
	for name in cifar5 cifar5_sub cifar2 cifar2_sub; do \
		$(PY) -m l2l train --recipe $$name --out $(RUNS)/$$name || exit 1; done

bench: setup
	$(PY) -m l2l bench --json benchmarks/latest.json

lint:
	bash scripts/setup.sh test
	$(VENV)/bin/ruff check l2l tests
