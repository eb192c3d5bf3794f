# mmea-pyg developer entry points. Everything installs into a local virtualenv (.venv).
#
#   make demo    install, download FB15K-DB15K, build the dataset, print its statistics
#   make test    install and run the test suite (integration tests use MMEA_MIRROR or ../shared/mmkg)
#
# TORCH_SPEC picks the torch build: the default is the CPU wheel of the reference machine; on a CUDA
# machine use e.g.  make TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"

PYTHON     ?= python3
VENV       ?= .venv
TORCH_SPEC ?= torch==2.13.0
EXTRAS     ?= test
PYTEST_ARGS ?=
DATASET    ?= fb15k-db15k

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint format clean-venv bench-data

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

demo: install
	$(BIN)/mmea download $(DATASET)
	$(BIN)/mmea info $(DATASET)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -m "not integration and not slow" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check mmea_pyg cli tests
	$(BIN)/ruff format --check mmea_pyg cli tests

format: install
	$(BIN)/ruff format mmea_pyg cli tests
	$(BIN)/ruff check --fix mmea_pyg cli tests

bench-data: install
	$(BIN)/python benchmarks/dataset_build.py $(DATASET) --json results/dataset_build_$(DATASET).json

clean-venv:
	rm -rf $(VENV)
