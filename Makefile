# Every target creates .venv itself (Python 3.11+) and installs the project into it.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test test-fast proto lint chaos bench browser clean sim

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)  ## a local 3-node cluster with 2 executors and demo jobs; Ctrl-C stops it
	$(VENV)/bin/raftsched dev

test: $(STAMP)  ## the whole suite: unit, simulation, integration against real processes
	$(PY) -m pytest -q -p no:cacheprovider

test-fast: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m "not integration"

SEEDS ?= 300
sim: $(STAMP)  ## SEEDS seeds of the Raft and of the scheduler simulation, one summary line each
	$(PY) scripts/sim.py --seeds $(SEEDS)

proto: $(STAMP)  ## regenerate the committed stubs in raftsched/v1 from proto/
	$(PY) -m grpc_tools.protoc -Iproto --python_out=. --pyi_out=. --grpc_python_out=. proto/raftsched/v1/*.proto

lint: $(STAMP)
	$(VENV)/bin/ruff check raftsched tests scripts jepsen-style
	$(VENV)/bin/mypy raftsched
	$(VENV)/bin/lint-imports

chaos: $(STAMP)  ## 5 nodes, 5 minutes of faults, then the checkers' verdict
	$(PY) jepsen-style/run.py --nodes 5 --executors 3 --time 300 --nemesis kill,pause,partition,executor --seed $${SEED:-1} --store store

bench: $(STAMP)
	$(PY) scripts/bench/run.py --json bench.json

browser:  ## Debian's Firefox ESR for the console's browser tests (root; .ci/run does this)
	bash scripts/install-browser.sh

clean:
	rm -rf .raftsched store bench.json
