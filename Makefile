# Two commands matter: `make run` and `make test`.  Both install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: run test lint typecheck pytest bench docs install clean

run: $(STAMP)  ## The demo: `hostql server --dev` and one local agent enrolled in it (Ctrl-C stops both)
	$(BIN)/python scripts/demo.py --data-dir ./hostql-data

test: $(STAMP) system-deps lint typecheck pytest  ## Lint, type-check and run every test

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[server,dev]'
	rm -f $(VENV)/.installed-*
	touch $@

# Programs the tests use as ground truth or start themselves (PostgreSQL,
# MariaDB, Redis, rsyslog); installed only when missing.
system-deps:
	bash scripts/system_deps.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests bench tools

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

bench: $(STAMP)  ## Benchmarks; each prints a ratio against a baseline from the same run
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

docs: $(STAMP)  ## Regenerate docs/tables.md from the specs
	$(BIN)/python tools/gen_table_docs.py > docs/tables.md

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
