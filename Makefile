# mmea-pyg developer entry points. Everything installs into a local virtualenv (.venv).
#
#   make demo    install, download FB15K-DB15K, build the dataset, print its statistics, train and evaluate CLAMEA
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

.PHONY: install demo test test-fast lint format clean-venv bench-data bench bench-seeds ablation compare bench-align bench-scale

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

demo: install
	$(BIN)/mmea download $(DATASET)
	$(BIN)/mmea info $(DATASET) --format table
	$(BIN)/mmea train --dataset $(DATASET) --out runs/demo
	$(BIN)/mmea eval --metric hits@1
	$(BIN)/mmea eval --metric all --csls

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -m "not integration and not slow" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check mmea_pyg cli tests benchmarks
	$(BIN)/ruff format --check mmea_pyg cli tests benchmarks

format: install
	$(BIN)/ruff format mmea_pyg cli tests benchmarks
	$(BIN)/ruff check --fix mmea_pyg cli tests benchmarks

# Benchmarks are commands, not tests: each writes results/*.json and regenerates BENCHMARKS.md.
# `make bench` trains each model with its validated preset (what `mmea train` runs without --config)
# and records two rows per run from the same checkpoint: the model's own embedding, and the same
# embedding with LightEA's propagated seed labels appended ("+ propagation", an add-on).
BENCH_MODELS ?= clamea
BENCH_DATASETS ?= fb15k-db15k fb15k-yago15k
BENCH_RATIOS ?= 0.2
ABLATION_CONFIG ?= clamea
ABLATION_TAG ?= fb15k-db15k_clamea_r0.2
ABLATION_SEEDS ?= 0 1 2
# Run order (the report shows Table 2's order): the switches that change the model on image-free data
# first; w/o V, w/o DMAFF, w/o MAF and w/o G build the same model as the full one when no entity has
# an image (no visual branch, no fused pair that a later module reads) and come last.
ABLATIONS ?= "w/o CMAE" "w/o A" "w/o IT" "w/o DMMG" "w/o MFE" "w/o L_m" "w/o L_s" "w/o R" "w/o V" "w/o DMAFF" "w/o MAF" "w/o G"

bench: install
	for m in $(BENCH_MODELS); do \
		$(BIN)/python benchmarks/run_bench.py --model $$m --config $$m --datasets $(BENCH_DATASETS) --ratios $(BENCH_RATIOS) --report || exit 1; \
	done

# The `make bench` rows of a preset over more training seeds (seed 0 is the `make bench` row itself), on
# the same split; BENCHMARKS.md reports mean +- std per benchmark. ~5 minutes per run on 2 cores.
BENCH_SEEDS ?= 1 2

bench-seeds: install
	for m in $(BENCH_MODELS); do \
		for d in $(BENCH_DATASETS); do \
			for s in $(BENCH_SEEDS); do \
				$(BIN)/python benchmarks/run_bench.py --model $$m --config $$m --datasets $$d --ratios 0.2 --no-propagation --set train.seed=$$s --set data.split_seed=0 --tag $${d}_$${m}_r0.2_train-seed$$s || exit 1; \
			done; \
		done; \
	done

# The Table 2 switches on FB15K-DB15K (preset ABLATION_CONFIG), each with the training seeds
# ABLATION_SEEDS on the same split, beside the full model with the same seeds (the run-to-run spread)
# and the untrained model (train.lr=0). BENCHMARKS.md reports mean +- std over the seeds.
# ABLATION_ARGS=--skip-existing resumes an interrupted series, keeping the rows already in results/.
ABLATION_ARGS ?=
ABLATION_RUN = $(BIN)/python benchmarks/run_bench.py --config $(ABLATION_CONFIG) --datasets fb15k-db15k --ratios 0.2 --no-propagation --set data.split_seed=0 $(ABLATION_ARGS)

ablation: install
	for seed in $(ABLATION_SEEDS); do \
		$(ABLATION_RUN) --tag $(ABLATION_TAG)_seed$$seed --set train.seed=$$seed || exit 1; \
	done
	for seed in $(ABLATION_SEEDS); do \
		$(ABLATION_RUN) --tag $(ABLATION_TAG)_seed$${seed}_untrained --set train.seed=$$seed --set train.lr=0 || exit 1; \
	done
	for a in $(ABLATIONS); do \
		for seed in $(ABLATION_SEEDS); do \
			$(ABLATION_RUN) --tag $(ABLATION_TAG)_seed$$seed --set train.seed=$$seed --ablation "$$a" || exit 1; \
		done; \
	done

# CLAMEA, RICEA and MIMEA on both benchmarks at three seed ratios (results/compare.md + plot); a
# subset with e.g. make compare COMPARE_ARGS="--ratios 0.2 --datasets fb15k-db15k".
COMPARE_CONFIG ?= clamea
COMPARE_ARGS ?=

compare: install
	$(BIN)/python -m pip install -q -e ".[plot]"
	$(BIN)/python benchmarks/compare.py --config $(COMPARE_CONFIG) $(COMPARE_ARGS)

# `mmea align` (recommended preset, structure only) on SRPRS EN-DE and OpenEA D-Y at their shipped
# splits, read in place from ../shared/ea (MMEA_EA_DATA), then the Sinkhorn and --names add-on rows from
# the same checkpoints. results/align/*.json and results/align.md.
BENCH_ALIGN_ARGS ?=

bench-align: install
	$(BIN)/python benchmarks/bench_align.py $(BENCH_ALIGN_ARGS)

# `mmea align` on ContEA JA-EN snapshots 0, 1, 3 and 5 (../shared/ea/contea/JA-EN read in place), structure
# only, the clamea preset, no refit; the Sinkhorn and greedy rows at the last snapshot. results/scale/*.json,
# results/scale.md (table, fitted growth) and results/scale.png. BENCH_SCALE_ARGS="--snapshots 0 5" for a subset.
BENCH_SCALE_ARGS ?=

bench-scale: install
	$(BIN)/python -m pip install -q -e ".[plot]"
	$(BIN)/python benchmarks/bench_scale.py $(BENCH_SCALE_ARGS)

bench-data: install
	$(BIN)/python benchmarks/dataset_build.py $(DATASET) --json results/dataset_build_$(DATASET).json

clean-venv:
	rm -rf $(VENV)
