# Two commands: `make demo` and `make test`. Each creates .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1

.PHONY: install demo test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test,quality]"
	touch $(STAMP)

demo: $(STAMP)
	$(OFFLINE) $(BIN)/diffii-datasets demo

test: $(STAMP)
	$(OFFLINE) $(BIN)/python -m flake8
	$(OFFLINE) $(BIN)/python -m pytest

# Benchmarks (benchmarks/README.md): each prints a table and closing `name: value (target ...)` lines.
# BENCH_ARGS is passed to every script, e.g. `make bench BENCH_ARGS=--threads=1` or `BENCH_ARGS=--quick`.
BENCHMARKS := generation inversion unet_share concept_step store memory
bench: $(STAMP)
	for name in $(BENCHMARKS); do $(OFFLINE) $(BIN)/python benchmarks/bench_$$name.py $(BENCH_ARGS) || exit 1; done

clean:
	rm -rf $(VENV) build dist *.egg-info demo-output
