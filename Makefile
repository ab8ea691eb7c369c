# The two commands: `make run` and `make test` (SPEC §2). Everything else supports them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
export PORT

.PHONY: run test bench chaos venv dev-venv lint clean

# A venv with the runtime requirements (mysqlclient needs the MariaDB client headers).
$(VENV)/.runtime: requirements.txt
	@bash scripts/mysql-server.sh ensure-client
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	@touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	@$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	@touch $@

venv: $(VENV)/.runtime
dev-venv: $(VENV)/.dev

run: $(VENV)/.runtime
	@bash scripts/run.sh

test: $(VENV)/.dev
	@bash scripts/browser.sh ensure
	@bash scripts/test.sh $(PYTEST_ARGS)

bench: $(VENV)/.dev
	@bash scripts/bench.sh

chaos: $(VENV)/.dev
	@bash scripts/chaos.sh

lint: $(VENV)/.dev
	@$(VENV)/bin/ruff check .

clean:
	@bash scripts/mysql-server.sh stop
	rm -rf $(VENV) var artifacts
