# Two commands: `make demo` and `make test`. Each creates .venv when it is missing.
# The documentation site: `make docs` (into site/); `.venv/bin/mkdocs serve` serves it while you edit.
# Packaging checks: `make check-wheel` (offline), `make test-min` and `make check-datasets-compat` (package index).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1

.PHONY: install demo test docs lint bench clean check-wheel test-min check-datasets-compat

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test,quality,docs]"
	touch $(STAMP)

demo: $(STAMP)
	$(OFFLINE) $(BIN)/diffii-datasets demo

# pytest builds the documentation site in strict mode and runs its code blocks and the README's (tests/test_docs.py).
test: $(STAMP)
	$(OFFLINE) $(BIN)/python -m flake8
	$(OFFLINE) $(BIN)/python -m pytest

# Strict: a broken link, a page missing from the nav or a docstring reference that does not resolve fails the build.
# Offline: no web fonts, no CDN (mkdocs.yml). NO_MKDOCS_2_WARNING silences Material's banner about its successor.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(OFFLINE) $(BIN)/mkdocs build --strict --site-dir site

# Benchmarks (benchmarks/README.md): each prints a table and closing `name: value (target ...)` lines.
# BENCH_ARGS is passed to every script, e.g. `make bench BENCH_ARGS=--threads=1` or `BENCH_ARGS=--quick`.
BENCHMARKS := generation inversion img2img unet_share concept_step store memory
bench: $(STAMP)
	for name in $(BENCHMARKS); do $(OFFLINE) $(BIN)/python benchmarks/bench_$$name.py $(BENCH_ARGS) || exit 1; done

# The built wheel installed in a clean environment, run from outside the checkout: the console script, the card
# templates inside the package, a demo store exported and loaded back with datasets (scripts/check_wheel.sh).
check-wheel: $(STAMP)
	VENV=$(VENV) bash scripts/check_wheel.sh

# Every requirement at exactly its declared floor (pyproject.toml) in .venv-min, then a fast subset of the tests
# (scripts/test_min.sh). torch and torchvision are borrowed from .venv rather than downloaded (several GB): the
# torch/torchvision floor verified here is the version installed in .venv, not the declared one.
test-min: $(STAMP)
	VENV=$(VENV) bash scripts/test_min.sh

# An export written with the tested datasets (5.x) read back row for row by datasets 3.0.0 and 3.6.0, through the
# folder and through load_dataset("parquet", data_files=...) (scripts/check_datasets_compat.sh).
check-datasets-compat: $(STAMP)
	VENV=$(VENV) bash scripts/check_datasets_compat.sh

clean:
	rm -rf $(VENV) .venv-min build dist *.egg-info demo-output site
