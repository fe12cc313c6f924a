# Every target creates .venv itself (Python 3.11+) and installs the project into it.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test test-fast fuzz sim proto lint chaos bench browser clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)  ## a local 3-node cluster with 2 executors and demo jobs; Ctrl-C stops it
	$(VENV)/bin/raftsched dev

TEST_WORKERS ?= 3
test: $(STAMP)  ## the whole suite: unit, simulation, integration against real processes (TEST_WORKERS processes)
	$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

test-fast: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m "not integration"

fuzz: $(STAMP)  ## the fuzz suite (tests/fuzz) for FUZZ_SECONDS (default 300) instead of make test's 2 short batches
	RAFTSCHED_FUZZ_SECONDS=$${FUZZ_SECONDS:-300} RAFTSCHED_FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-200} \
		$(PY) -m pytest -q -p no:cacheprovider -s tests/fuzz

SEEDS ?= 300
sim: $(STAMP)  ## SEEDS seeds of the Raft and of the scheduler simulation, one summary line each
	$(PY) scripts/sim.py --seeds $(SEEDS)

proto: $(STAMP)  ## regenerate the committed stubs in raftsched/v1 from proto/
	$(PY) -m grpc_tools.protoc -Iproto --python_out=. --pyi_out=. --grpc_python_out=. proto/raftsched/v1/*.proto

lint: $(STAMP)
	$(VENV)/bin/ruff check raftsched tests scripts jepsen-style
	$(VENV)/bin/mypy raftsched
	$(VENV)/bin/lint-imports

chaos: $(STAMP)  ## 5 nodes, 5 minutes of every fault kind at 120 ops/s, then the checkers' verdict
	$(PY) jepsen-style/run.py --nodes 5 --executors 3 --time 300 --nemesis all --nemesis-interval 5 \
	  --rate 120 --clients 96 --slots 8 --noop-jobs 0.7 --long-jobs 0.1 --dependencies 0.1 --schedules 5 \
	  --seed $${SEED:-1} --store store

bench: $(STAMP)
	$(PY) scripts/bench/run.py --json bench.json

browser:  ## Debian's Firefox ESR for the console's browser tests (root; .ci/run does this)
	bash scripts/install-browser.sh

clean:
	rm -rf .raftsched store bench.json
