# The README's two commands, `make run` and `make test`, each set themselves up:
# the first use creates .venv and installs bookql into it (scripts/install.sh).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.bookql-installed

.PHONY: install run test test-fast lint bench notebook clean

$(STAMP): pyproject.toml scripts/install.sh scripts/fetch-graphiql.sh scripts/fetch-console.sh
	VENV=$(VENV) EXTRAS=dev PYTHON=$(PYTHON) sh scripts/install.sh
	touch $@

install: $(STAMP)

run: $(STAMP)
	$(BIN)/bookql serve

# One pytest worker a core (at most 4: each takes a Redis database of its own, see conftest).
test: lint
	$(BIN)/pytest -n auto --maxprocesses=4

# The tests not marked slow, without lint: a quick check while working (docs/testing.md).
test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow" -n auto --maxprocesses=4

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# `make bench QUICK=1` for smaller sizes; `make bench BENCH="catalog predict"` for some of them.
bench: $(STAMP)
	$(BIN)/python -m bench $(if $(QUICK),--quick) $(BENCH)

# Jupyter in .venv (the `notebook` extra), opened on the example notebook (docs/client.md).
NOTEBOOK_STAMP := $(VENV)/.bookql-notebook
$(NOTEBOOK_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[notebook]'
	touch $@

notebook: $(NOTEBOOK_STAMP)
	$(BIN)/jupyter lab examples/training_data.ipynb

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
