# Two commands do all set-up: `make run` (the job on the sample) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench-split bench-scale dictionary clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m pipeline run

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

bench-split: $(STAMP)
	$(PY) -m benchmarks.split_accuracy

# The CLI on 200k and 1M generated papers, this checkout beside the design before the rewrite
# (~1.7 GB of inputs under /tmp; options: $(PY) -m benchmarks.scale --help).
bench-scale: $(STAMP)
	$(PY) -m benchmarks.scale

dictionary: $(STAMP)
	$(PY) -c "from schemas.contract import data_dictionary; print(data_dictionary(), end='')" > schemas/DATA_DICTIONARY.md

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
	cd data/processed && rm -rf versions latest LATEST LATEST_ID staged rejected .cache .lock
