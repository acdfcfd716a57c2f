# Two commands do all the set-up: `make train` and `make test`.
# The first one run creates the virtual environment .venv with Python 3.10 or
# newer (python3.11 if there is one, else python3; PYTHON=/path/to/python
# chooses) and installs requirements.txt and the project (editable, with its
# `impala-tf` program) into it; again after requirements.txt or
# pyproject.toml change.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed
PY := $(VENV)/bin/python
IMPALA_TF := $(VENV)/bin/impala-tf
# The configuration `make train` runs (configs/*.cfg; flags in ARGS override
# it), e.g. make train CONFIG=configs/atari_shallow_expert.cfg for the paper's.
# pong_fast.cfg is the default because it shows Pong learning within an hour
# on 2 CPUs (docs/LEARNING.md); the paper's schedule barely moves in 20M frames.
CONFIG ?= configs/pong_fast.cfg
# Extra flags for the trainer, e.g. make train ARGS="--num_actors=4"
ARGS ?=

# Why $(PYTHON) cannot make the environment (one sentence), or nothing.
PYTHON_PROBLEM = $(shell \
  if [ -z "$(PYTHON)" ]; then \
    echo "no python3.11 or python3 on PATH: install Python 3.10 or newer, or run make PYTHON=/path/to/python3"; \
  elif ! version=$$("$(PYTHON)" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null); then \
    echo "$(PYTHON) does not run, and impala_tf needs Python 3.10 or newer (make PYTHON=/path/to/python3.11)"; \
  elif ! "$(PYTHON)" -c 'import sys; sys.exit(sys.version_info < (3, 10))' >/dev/null 2>&1; then \
    echo "$(PYTHON) is Python $$version, and impala_tf needs 3.10 or newer (make PYTHON=/path/to/python3.11)"; \
  fi)

.PHONY: train test test-fast bench check-python clean-venv

$(STAMP): requirements.txt pyproject.toml
	$(if $(wildcard $(PY)),,$(if $(PYTHON_PROBLEM),$(error $(PYTHON_PROBLEM))))
	@echo "installing TensorFlow and the other dependencies into $(VENV) (a few minutes, once)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

# Stops with one sentence unless $(PYTHON) is Python 3.10 or newer.
check-python:
	$(if $(PYTHON_PROBLEM),$(error $(PYTHON_PROBLEM)),@echo "$(PYTHON): Python 3.10 or newer")

train: $(STAMP)
	$(IMPALA_TF) train --flagfile=$(CONFIG) $(ARGS)

# -n auto: one pytest worker per CPU (pytest-xdist); --durations: the slowest
# tests at the end, to keep the suite's time in view.
test: $(STAMP)
	$(PY) -m pytest -q -n auto --durations=15 tests

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" tests

# The throughput benchmark's short grid (~3 min; benchmarks/README.md).
bench: $(STAMP)
	$(PY) -m benchmarks.throughput --quick

clean-venv:
	rm -rf $(VENV)
