# threadline — `make serve` and `make test` set everything up (idempotently) and then act.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup serve test test-fast lint format bench clean

$(STAMP): pyproject.toml requirements/lock.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements/lock.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)
	bash scripts/build-embedding-model.sh
	bash scripts/setup-sandbox.sh

serve: setup
	$(VENV)/bin/threadline serve

test: setup
	bash scripts/sdk-compat-venv.sh
	bash scripts/client-venvs.sh
	bash scripts/setup-node-clients.sh
	bash scripts/setup-browser.sh
	$(PY) -m pytest -q -p no:cacheprovider tests
	.venv-sdk1/bin/python -m pytest -q -p no:cacheprovider tests/sdk tests/runs tests/file_search tests/code_interpreter
	.venv-sdk1r/bin/python -m pytest -q -p no:cacheprovider tests/containers tests/clients
	.venv-agents/bin/python -m pytest -q -p no:cacheprovider tests/clients/test_agents.py

# The in-process tier only (tests/fast: no server subprocess, no sandbox, SQLite); `make test` runs it too.
test-fast: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider tests/fast

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

format: $(STAMP)
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

bench: setup
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .venv-sdk1 .venv-sdk1r .venv-agents .venv-build .cache tests/clients/node/node_modules
