# Two commands do all set-up: `make run` (the job on the sample) and `make test`.
# Both install from the committed lock (uv.lock) with uv, itself pinned and installed from PyPI
# into the venv: `make run` the runtime dependencies only, `make test` the dev tools as well.
PYTHON ?= python3
VENV   ?= .venv
UV_VERSION := 0.13.8
PY     := $(VENV)/bin/python
UV     := $(VENV)/bin/uv
STAMP  := $(VENV)/.installed
DEV    := $(VENV)/.installed-dev
# --inexact: uv must not remove itself (or the dev tools, when only the runtime is synced).
# --compile-bytecode: every module compiled once, at install. Python otherwise compiles on import
# and caches the result, unless it may not write it (PYTHONDONTWRITEBYTECODE, a read-only folder):
# then every process compiles all it imports again, and a run starts 3-4 s later.
SYNC   := UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --inexact --compile-bytecode

# test-fast: the tests that start no service (no Prefect server, SeaweedFS, Dask or browser).
# Both run on xdist workers. The whole suite uses --dist loadfile, which keeps a file's tests (and
# a docs page's snippets, which build on each other) in order on one worker; the fast tier, which
# holds no page, --dist worksteal, which keeps both workers busy to the end.
# PYTEST_WORKERS=0: one process.
PYTEST_WORKERS ?= 2
FAST_WORKERS   ?= 2
.PHONY: run test test-fast lint bench-split bench-scale dictionary given-names lock clean

$(UV):
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(STAMP): pyproject.toml uv.lock | $(UV)
	$(SYNC)
	touch $(STAMP)

$(DEV): pyproject.toml uv.lock | $(UV)
	$(SYNC) --extra dev
	touch $(STAMP) $(DEV)

run: $(STAMP)
	$(PY) -m pipeline run

test: $(DEV)
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile

test-fast: $(DEV)
	$(PY) -m pytest -n $(FAST_WORKERS) --dist worksteal -m "not service"

lint: $(DEV)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

bench-split: $(DEV)
	$(PY) -m benchmarks.split_accuracy

# The CLI on 200k and 1M generated papers (~1.7 GB of inputs under /tmp): first as a user runs it
# (no Prefect server configured: each run starts its own; 3 rounds, medians; also the refresh and
# the sample), then against one warm server, beside the design before the rewrite. Options:
# $(PY) -m benchmarks.user_way --help, $(PY) -m benchmarks.scale --help.
bench-scale: $(DEV)
	$(PY) -m benchmarks.user_way --work /tmp/pipeline-bench-scale
	$(PY) -m benchmarks.scale

dictionary: $(DEV)
	$(PY) -c "from schemas.contract import data_dictionary; print(data_dictionary(), end='')" > schemas/DATA_DICTIONARY.md

# The splitter's given-name lexicon, from the real corpora under tests/data (see its docstring).
given-names: $(DEV)
	$(PY) -m benchmarks.given_names

# After editing dependencies in pyproject.toml: re-resolve and commit uv.lock.
lock: | $(UV)
	$(UV) lock

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
	cd data/processed && rm -rf versions latest LATEST LATEST_ID staged rejected .cache .lock
