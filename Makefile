# A fresh machine needs only make and Python 3.11+: `make train`, `make test`.
# Each creates the virtual environment .venv on first use and reuses it after;
# every install takes the exact versions in constraints.txt (`make lock` writes it).
VENV ?= .venv
PYTHON := $(VENV)/bin/python
PIP_INSTALL := $(PYTHON) -m pip install --quiet -c constraints.txt
GAME ?= SpaceInvadersNoFrameskip-v4
ARGS ?=
# Tests run this many at a time (pytest-xdist), one per core of a 2-core machine; `make test TEST_WORKERS=0` runs them one by one.
TEST_WORKERS ?= 2
# Tests of one xdist_group run on one worker, one after another: the Ray clusters and what watches /dev/shm.
PYTEST := $(PYTHON) -m pytest -n $(TEST_WORKERS) --dist loadgroup

.PHONY: train test test-learning test-all lock clean

$(VENV)/installed: requirements.txt constraints.txt
	python3 -m venv $(VENV)
	$(PIP_INSTALL) --upgrade pip
	$(PIP_INSTALL) -r requirements.txt
	touch $@

# The tests also need pytest, pytest-xdist and Ray (for --ray_address's tests), and uv for `make lock`; training does not.
$(VENV)/installed-dev: $(VENV)/installed requirements-dev.txt requirements-ray.txt constraints.txt
	$(PIP_INSTALL) -r requirements-dev.txt
	touch $@

# benchmarks/peers.py's Stable-Baselines3 and PyTorch: to measure the peers, and for their slow test.
$(VENV)/installed-peers: $(VENV)/installed requirements-peers.txt constraints.txt
	$(PIP_INSTALL) -r requirements-peers.txt
	touch $@

train: $(VENV)/installed
	$(PYTHON) async_q_nstep.py --game $(GAME) $(ARGS)

# The fast tier: every test not marked slow (pytest.ini says what slow means).
test: $(VENV)/installed-dev
	$(PYTEST) -m "not slow"

# Every learner, 2 processes included, trains on Catch to the pass mark: CI runs it after `test`.
test-learning: $(VENV)/installed-dev
	$(PYTEST) -m learns

# The whole suite, learning, cluster and peers' tests included.
test-all: $(VENV)/installed-dev $(VENV)/installed-peers
	$(PYTEST)

# Newest releases within the requirements files' ranges, pinned for every platform and Python 3.11+.
# Then `make test-all`: it reinstalls from the new pins before it tests.
lock: $(VENV)/installed-dev
	$(VENV)/bin/uv pip compile requirements-dev.txt requirements-peers.txt --universal --python-version 3.11 --upgrade --quiet \
		--custom-compile-command "make lock" --output-file constraints.txt

clean:
	rm -rf $(VENV)
