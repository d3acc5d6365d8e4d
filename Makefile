# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
BRIDGE := $(VENV)/bin/bridge
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: run test install install-test lint typecheck migrations-check unit bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

## run: migrate the embedded SQLite database and serve on 127.0.0.1:8000
run: install
	$(BRIDGE) db upgrade
	$(BRIDGE) serve

## test: install what the tests need (packages and servers), then lint, types, migrations, tests
test: install
	bash scripts/install-test-deps.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(MAKE) --no-print-directory migrations-check
	$(PY) -m pytest -q

migrations-check: install
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	  BRIDGE_DATA_DIR=$$tmp BRIDGE_DATABASE_URL= $(BRIDGE) db upgrade && \
	  BRIDGE_DATA_DIR=$$tmp BRIDGE_DATABASE_URL= $(BRIDGE) db check

bench: install
	bash scripts/install-test-deps.sh
	$(PY) -m bench

clean:
	rm -rf $(VENV) var *.egg-info
