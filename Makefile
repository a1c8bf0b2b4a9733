# Two commands for a fresh machine: `make train` and `make test`.
# Each creates the virtual environment .venv on first use and reuses it after.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
GAME ?= SpaceInvadersNoFrameskip-v4
ARGS ?=

.PHONY: train test clean

$(VENV)/installed: requirements.txt
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -r requirements.txt
	touch $@

# The tests also need pytest and Ray (for --ray_address's tests); training does not.
$(VENV)/installed-dev: $(VENV)/installed requirements-dev.txt requirements-ray.txt
	$(PYTHON) -m pip install --quiet -r requirements-dev.txt
	touch $@

train: $(VENV)/installed
	$(PYTHON) async_q_nstep.py --game $(GAME) $(ARGS)

test: $(VENV)/installed-dev
	$(PYTHON) -m pytest

clean:
	rm -rf $(VENV)
