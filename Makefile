# Two entry points for a fresh clone: `make demo` (make data, train a scorer, curate, report) and `make test`.
# Each creates .venv, installs the CPU torch wheel first (any other torch spec pulls a multi-GB CUDA build),
# then this package.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test lint bench clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)  # offline, ~5 min on 2 CPU cores: data, train the quickstart model, curate, report (docs/quickstart.md)
	$(BIN)/unifilter-hf demo --output out/demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q || test $$? -eq 5  # exit 5: no tests collected

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) out

bench: $(STAMP)  # a few minutes on 2 cores: the table, and out/bench_scoring.json
	$(BIN)/python benchmarks/bench_scoring.py --json out/bench_scoring.json
