# The two commands of the README: `make demo` and `make test`.
# Each creates or reuses the project's virtualenv (.venv) from the locked set in uv.lock.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
export UV_COMPILE_BYTECODE := 1

.PHONY: venv demo test lint bench bench-scale bench-mapping mutation clean

$(VENV)/.synced: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	$(UV) sync --frozen --extra sandbox
	@touch $@

venv: $(VENV)/.synced

demo: venv
	$(PY) scripts/demo.py

# pytest-xdist: TEST_WORKERS worker processes (`make test TEST_WORKERS=1` for one). Most tests wait on
# a sandbox, PostgreSQL or an Airflow component, so one process leaves a 2-core machine half idle:
# there (2026-12-02, fresh clones) plain pytest took 18.4 minutes, 2 workers 11, 3 workers 7.5-9. --dist loadfile:
# a module's tests in one worker, so module-scoped fixtures (an api-server, a sandbox) start once;
# --no-loadscope-reorder: modules in collection order, where the slow ones come first (xdist would
# otherwise hand out the modules with the most tests first, and the single long tests last).
TEST_WORKERS ?= 3
test: venv
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

lint: venv
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build data

# Mutation testing (not part of `make test`): mutmut over the modules that decide correctness, with
# their own tests ([tool.mutmut] in pyproject.toml); prints the score and the survivors, writes
# build/mutation/summary.json. MUTATION_CHILDREN=N runs N mutants at once (default 2).
mutation: venv
	$(PY) scripts/mutation.py

bench-mapping: venv
	$(PY) benchmarks/bench_mapping.py

# The backfill benchmark (not part of `make test`): BENCH_ARGS="--sessions 20000" for a quick try.
bench: venv
	$(PY) benchmarks/bench_backfill.py $(BENCH_ARGS)

# The scale series (not part of `make test`): one tenant of 1 000 000 sessions over 90 days, the
# pipeline over the share of it that holds each size (peak RSS and seconds per size), after the
# request counts of sampled hourly intervals and a deep re-read; hours on a 2-core machine.
bench-scale: venv
	$(PY) benchmarks/bench_backfill.py --scale 125000,250000,500000,1000000 --days 90 $(BENCH_ARGS)
