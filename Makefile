# Two commands do all the set-up: `make train` and `make test`.
# Each creates the virtual environment from requirements.txt on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed
PY := $(VENV)/bin/python
# The configuration `make train` runs (configs/*.cfg; flags in ARGS override
# it), e.g. make train CONFIG=configs/atari_shallow_expert.cfg for the paper's.
# pong_fast.cfg is the default because it shows Pong learning within an hour
# on 2 CPUs (docs/LEARNING.md); the paper's schedule barely moves in 20M frames.
CONFIG ?= configs/pong_fast.cfg
# Extra flags for the trainer, e.g. make train ARGS="--num_actors=4"
ARGS ?=

.PHONY: train test test-fast bench clean-venv

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt
	touch $(STAMP)

train: $(STAMP)
	$(PY) -m impala_tf.cli.experiment --flagfile=$(CONFIG) $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q tests

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" tests

clean-venv:
	rm -rf $(VENV)
