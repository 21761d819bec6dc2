# carecheck — `make demo` runs the main job end to end on embedded defaults; `make test` runs every test.
# Both install what they need (venv, pip, npm) on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

.PHONY: install lock demo test test-fast bench lint typecheck check clean

install: $(VENV)/.installed node_modules/.installed fieldapp/static/.built

# Installs exactly the versions in constraints.txt (tested by CI); `make lock` refreshes them.
$(VENV)/.installed: pyproject.toml constraints.txt
	@bash scripts/system-deps.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	@touch $@

# constraints.txt: the newest releases pyproject.toml's bounds allow, resolved in a throw-away venv. Commit it
# after `make lock && make check`.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install -q --upgrade pip
	.lock-venv/bin/python -m pip install -q '.[test]'
	{ echo "# make lock: pip freeze of pyproject.toml's dependencies (with [test]); do not edit by hand"; \
	  .lock-venv/bin/python -m pip freeze --all --exclude-editable | grep -v -E '^(carecheck|pip|setuptools|wheel)( @|==)'; \
	} > constraints.txt
	rm -rf .lock-venv build

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

# Two test processes (pytest-xdist), each with its own servers; a test file runs whole in one of them (module
# fixtures are set up once). `make test TEST_WORKERS=` runs everything in one process.
TEST_WORKERS ?= -n 2 --dist loadfile

test: install
	@bash scripts/system-deps.sh --test
	$(BIN)/python -m pytest $(TEST_WORKERS) $(PYTEST_ARGS)

test-fast: install
	@bash scripts/system-deps.sh --test
	$(BIN)/python -m pytest -m "not slow" $(TEST_WORKERS) $(PYTEST_ARGS)

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
