# Two commands on a fresh machine with Python 3.11: `make demo` and `make test`.
# Each creates .venv if needed and installs the pinned dependencies (requirements.lock) first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Quiet, local Prefect: no analytics, and room for the ephemeral API server to start on slow machines.
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120
export PREFECT_LOGGING_EXTRA_LOGGERS ?= handgesture
export PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW ?= ignore

.PHONY: install demo demo-s3 test lint mutants gpu-wheels tensorboard notebook clean

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) scripts/check_install_space.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# Every package is pinned, so pip does not backtrack; torch and torchvision come from the local wheel cache
	# where the machine has one.
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

# DEMO_ARGS: extra options or key=value overrides (the README test makes the demo tiny with them).
demo: $(STAMP)
	$(BIN)/python flows/train.py --config configs/demo.yaml $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# Break each README guarantee on purpose in a copy of the tree; the tests its row names must fail.
mutants: $(STAMP)
	$(BIN)/python scripts/mutants.py

# The GPU check (scripts/gpu_check.sh) runs on a machine without Prefect or OmegaConf: their wheels travel.
gpu-wheels: $(STAMP)
	scripts/gpu_wheels.sh

tensorboard: $(STAMP)
	$(BIN)/tensorboard --logdir runs

# examples/notebook.ipynb in Jupyter Notebook (its own pinned lock, installed into .venv on first use).
# NOTEBOOK_ARGS go to `jupyter notebook`, e.g. NOTEBOOK_ARGS="--no-browser --port 8890".
NOTEBOOK_STAMP := $(VENV)/.notebook-installed
$(NOTEBOOK_STAMP): requirements-notebook.lock $(STAMP)
	$(BIN)/pip install --quiet -r requirements-notebook.lock
	touch $@

# Jupyter refuses to run as root unless told: containers (and CI) run as root.
notebook: $(NOTEBOOK_STAMP)
	$(BIN)/jupyter notebook $(if $(filter 0,$(shell id -u)),--allow-root) $(NOTEBOOK_ARGS) examples/notebook.ipynb

clean:
	rm -rf runs data .pytest_cache

# The demo with checkpoints in S3: a local moto_server, 2 epochs into s3://, then a resume from the s3:// URI.
demo-s3: $(STAMP)
	scripts/demo_s3.sh

# Deployments (docs/deployments.md): a local Prefect server on 127.0.0.1, the GPU work pool, prefect.yaml's
# deployments and a worker. Run `make server` and `make worker` in their own terminals.
# make run PARAMS="--param resume=s3://bucket/runs/demo/<run>" OVERRIDES='["train_params.epochs=20"]'
# (DEPLOYMENT=retrain-hand-gesture-classifier/scheduled-retrain for the other one)
.PHONY: server pool deploy worker run ui
server: $(STAMP)
	scripts/deployments.sh server

pool: $(STAMP)
	scripts/deployments.sh pool

deploy: $(STAMP) pool
	scripts/deployments.sh deploy

worker: $(STAMP)
	scripts/deployments.sh worker

run: $(STAMP)
	OVERRIDES='$(OVERRIDES)' scripts/deployments.sh run $(or $(DEPLOYMENT),train-hand-gesture-classifier/train) $(PARAMS)

ui:
	scripts/deployments.sh ui
