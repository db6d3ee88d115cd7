# Two commands set up everything on a fresh machine:
#   make run    the whole system locally (SQLite, local Redis, fake SumUp, web, worker, beat)
#   make test   lint, types, migration checks and the whole test suite
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run logins test bench bench-quick lint setup clean

$(STAMP): pyproject.toml
	@test -x $(PY) || "$$(scripts/find-python)" -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	scripts/run-local

# The local run's logins again, without changing anything.
logins: $(STAMP)
	@DEBUG=true $(PY) webapp/manage.py seed_demo --show

test: $(STAMP)
	scripts/test

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

BENCHES := migrations_bench token_refresh_bench backfill_bench campaigns_bench refresh_scale_bench refresh_week_bench

# Benchmarks print their figures beside a baseline measured in the same run; never in CI.
bench: $(STAMP)
	@for b in $(BENCHES); do echo "== $$b"; $(PY) bench/$$b.py || exit 1; done

bench-quick: $(STAMP)
	@for b in $(BENCHES); do echo "== $$b --quick"; $(PY) bench/$$b.py --quick || exit 1; done

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
