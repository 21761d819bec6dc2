# carecheck — `make demo` runs the main job end to end on embedded defaults; `make test` runs every test.
# Both install what they need (venv, pip, npm) on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

.PHONY: install demo test test-fast bench lint typecheck check clean

install: $(VENV)/.installed node_modules/.installed fieldapp/static/.built

$(VENV)/.installed: pyproject.toml
	@bash scripts/system-deps.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

node_modules/.installed: package.json
	npm install --ignore-scripts --no-audit --no-fund --loglevel=error
	@# enketo-transformer's native XSLT (shared/DESIGN.md recipe): one at a time, libxslt links the other.
	npm rebuild node1-libxmljsmt-myh --loglevel=error
	npm rebuild libxslt --loglevel=error
	@touch $@

# The field web app's bundle (esbuild + sass; output git-ignored), rebuilt when its sources change.
fieldapp/static/.built: node_modules/.installed fieldapp/build.mjs $(wildcard fieldapp/src/*)
	node fieldapp/build.mjs
	@touch $@

demo: install
	$(BIN)/carecheck demo

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check core forms sync_server console edge simulator aggregator cli fieldapp tests bench migrations

check: lint typecheck test

typecheck: install
	$(BIN)/mypy core forms sync_server console edge simulator aggregator cli fieldapp

clean:
	$(BIN)/carecheck local stop 2>/dev/null || true
	rm -rf var
