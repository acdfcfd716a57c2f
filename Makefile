# Two commands do all the set-up: `make train` and `make test`.
# Each creates the virtual environment from requirements.txt on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed
PY := $(VENV)/bin/python
# Extra flags for the trainer, e.g. make train ARGS="--level_name=atari/breakout"
ARGS ?=

.PHONY: train test test-fast bench clean-venv

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt
	touch $(STAMP)

train: $(STAMP)
	$(PY) -m impala_tf.experiment $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q tests

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" tests

clean-venv:
	rm -rf $(VENV)
