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

# pretrained:mnist from scratch, in two stages (l2l/pretrained/README.md): the paper's 20-step
# unrolls on 200-step horizons, then 50-step unrolls from the best of the first stage
RUNS ?= runs
mnist-optimizer: setup
	$(PY) -m l2l train mnist --horizon 200 --epochs 900 --out $(RUNS)/mnist_stage1
	$(PY) -m l2l train mnist --init lstm:$(RUNS)/mnist_stage1/best.pt --horizon 200 --unroll 50 \
		--epochs 300 --meta-lr 1e-3 --out $(RUNS)/mnist

# pretrained:cifar10 from scratch (l2l/pretrained/README.md): an LSTM with Adam's moments among its
# inputs first imitates NAG's steps, then is meta-trained with that imitation kept in its meta-loss
cifar10-optimizer: setup
	$(PY) -m l2l train cifar10 --adam-inputs --imitate nag:0.0215 --imitate-epochs 40 --imitate-lr 3e-3 \
		--epochs 0 --horizon 200 --validation-size 2 --out $(RUNS)/cifar10_imitate
	$(PY) -m l2l train cifar10 --init lstm:$(RUNS)/cifar10_imitate/best.pt --imitate nag:0.0215 \
		--imitate-epochs 0 --imitate-weight 1 --objective log_loss --horizon 200 --meta-lr 3e-3 \
		--lr-schedule cosine --epochs 200 --validate-every 20 --validation-size 4 \
		--select-by final_loss --out $(RUNS)/cifar10

# pretrained:cifar5, cifar5_sub, cifar2, cifar2_sub: the same two stages in one command each
# (imitation first, then meta-training); the LSTM-sub ones see only the labels they are not tested on
CIFAR_RECIPE = --adam-inputs --imitate nag:0.0215 --imitate-epochs 40 --imitate-lr 3e-3 \
	--imitate-weight 1 --objective log_loss --horizon 200 --meta-lr 3e-3 --lr-schedule cosine \
	--validate-every 20 --validation-size 4 --select-by final_loss
cifar-subset-optimizers: setup
	$(PY) -m l2l train cifar10:labels=0-4 $(CIFAR_RECIPE) --epochs 200 --out $(RUNS)/cifar5
	$(PY) -m l2l train cifar10:labels=5-9 $(CIFAR_RECIPE) --epochs 100 --out $(RUNS)/cifar5_sub
	$(PY) -m l2l train cifar10:labels=0-1 $(CIFAR_RECIPE) --epochs 200 --out $(RUNS)/cifar2
	$(PY) -m l2l train cifar10:labels=2-9 $(CIFAR_RECIPE) --epochs 100 --out $(RUNS)/cifar2_sub

bench: setup
	$(PY) -m l2l bench --json benchmarks/latest.json

lint:
	bash scripts/setup.sh test
	$(VENV)/bin/ruff check l2l tests
