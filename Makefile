# Two commands do all the set-up on a fresh machine with Python 3.11+, pip and git:
#   make demo   - a Thai market day on a 4-authority devnet (processes on 127.0.0.1), Ctrl-C stops
#   make test   - install everything into .venv and run lint, types and the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-ledger test test-core lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gridtokenx demo $(DEMO_ARGS)

demo-ledger: $(STAMP)
	$(BIN)/gridtokenx demo-ledger

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest -n auto --dist worksteal --durations=25

# The pure layers (wire, ledger, consensus) and the golden vectors: no processes, no sockets.
test-core: $(STAMP)
	$(BIN)/pytest -n auto tests/wire tests/ledger tests/consensus tests/golden

bench: $(STAMP)
	$(BIN)/python bench/ledger_bench.py
	$(BIN)/python bench/market_bench.py
	$(BIN)/python bench/transport_bench.py
	$(BIN)/python bench/chain_bench.py
	$(BIN)/python bench/devnet_bench.py
	$(BIN)/python bench/surveillance_bench.py
	$(BIN)/python bench/auction_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
