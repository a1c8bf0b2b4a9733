# Two commands for a fresh machine: `make train` and `make test`.
# Each creates the virtual environment .venv on first use and reuses it after.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
GAME ?= SpaceInvadersNoFrameskip-v4
ARGS ?=

.PHONY: train test clean

$(VENV)/installed: requirements.txt requirements-dev.txt
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -r requirements-dev.txt
	touch $@

train: $(VENV)/installed
	$(PYTHON) async_q_nstep.py --game $(GAME) $(ARGS)

test: $(VENV)/installed
	$(PYTHON) -m pytest

clean:
	rm -rf $(VENV)
