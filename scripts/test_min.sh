#!/usr/bin/env bash
# `make test-min`: install the declared minimum version of every requirement in a second environment
# (.venv-min) and run a fast subset of the tests there, so a floor in pyproject.toml that does not hold fails.
#
# Every requirement is installed at exactly its floor (scripts/min_requirements.py), from the package index,
# except torch and torchvision: those (and the CUDA libraries they need, several GB) are borrowed from the
# project environment (scripts/borrow_site_packages.py), so the torch floor verified here is the installed
# version, not torch>=2.4's 2.4. Run again after changing a floor: pins that changed are reinstalled.
#
# Variables: VENV (the project environment, default .venv), MIN_VENV (default .venv-min),
# MIN_TESTS (the test files), PYTEST_ARGS (extra pytest arguments, e.g. "-n 0").
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
MIN_VENV=${MIN_VENV:-.venv-min}
MIN_TESTS=${MIN_TESTS:-tests/test_imports.py tests/test_config.py tests/test_store.py tests/test_cli.py
tests/diffusion/test_pipeline.py tests/diffusion/test_suffix_captioned.py tests/datasets/test_tv_datasets.py
tests/hf/test_hf_convert.py tests/hf/test_hf_hub.py tests/hf/test_hf_columns.py tests/quality/test_models.py
tests/quality/test_sweep.py tests/classify/test_models.py}
OFFLINE=(env HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1)

if [ ! -x "$MIN_VENV/bin/python" ]; then
    # The project environment's own interpreter, so the borrowed compiled packages match it.
    base=$("$VENV/bin/python" -c 'import sys; print(sys._base_executable)')
    "$base" -m venv "$MIN_VENV"
fi
declared=$("$VENV/bin/python" scripts/min_requirements.py --skip torch torchvision | sed 's/==.*//')
# shellcheck disable=SC2086  # word splitting of the names is intended
"$VENV/bin/python" scripts/borrow_site_packages.py "$VENV" "$MIN_VENV" --only torch torchvision --keep $declared
"$VENV/bin/python" scripts/min_requirements.py --skip torch torchvision > "$MIN_VENV/requirements-min.txt"
echo "installing the declared minimum versions into $MIN_VENV:"
sed 's/^/  /' "$MIN_VENV/requirements-min.txt"
"$MIN_VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$MIN_VENV/requirements-min.txt"
"$MIN_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e .
"$MIN_VENV/bin/python" -m pip check
"$MIN_VENV/bin/python" - <<'EOF'
import importlib.metadata as metadata

names = ["torch", "torchvision", "diffusers", "transformers", "peft", "datasets", "huggingface_hub", "numpy",
         "pillow", "pyarrow", "tokenizers"]
print("versions in this environment: " + ", ".join(f"{name} {metadata.version(name)}" for name in names))
EOF
# shellcheck disable=SC2086
"${OFFLINE[@]}" "$MIN_VENV/bin/python" -m pytest -q -p no:cacheprovider ${PYTEST_ARGS:-} $MIN_TESTS
