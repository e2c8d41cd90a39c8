# Two commands do all the set-up on a fresh machine with Python 3.11+, pip and git:
#   make demo   - a Thai market day on a 4-authority devnet (processes on 127.0.0.1), Ctrl-C stops
#   make test   - install everything into .venv and run lint, types and the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The compiled bucket-tree hashing (setup.py): `pip install -e .` builds it in place under
# src/; `make native` rebuilds it after an edit of its .pyx (test and bench do it too).
NATIVE := $(VENV)/.native
NATIVE_SOURCES := setup.py src/gridtokenx/ledger/_tree_hashing.pyx

.PHONY: demo demo-ledger test test-core lint bench clean native

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP) $(NATIVE)

$(NATIVE): $(STAMP) $(NATIVE_SOURCES)
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(NATIVE)

native: $(NATIVE)

demo: $(STAMP)
	$(BIN)/gridtokenx demo $(DEMO_ARGS)

demo-ledger: $(STAMP)
	$(BIN)/gridtokenx demo-ledger

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint $(NATIVE)
	$(BIN)/pytest -n auto --dist worksteal --durations=25

# The pure layers (wire, ledger, consensus) and the golden vectors: no processes, no sockets.
test-core: $(NATIVE)
	$(BIN)/pytest -n auto tests/wire tests/ledger tests/consensus tests/golden

bench: $(NATIVE)
	$(BIN)/python bench/ledger_bench.py
	$(BIN)/python bench/market_bench.py
	$(BIN)/python bench/transport_bench.py
	$(BIN)/python bench/chain_bench.py
	$(BIN)/python bench/devnet_bench.py
	$(BIN)/python bench/surveillance_bench.py
	$(BIN)/python bench/auction_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build
	rm -f src/gridtokenx/ledger/_tree_hashing.c src/gridtokenx/ledger/*.so
