#!/usr/bin/env bash
# `make check-wheel`: build the wheel, install it in a clean virtual environment and use it from outside the
# checkout: the console script, the card templates inside the installed package, a demo store made with the tiny
# offline pipeline, exported with `diffii-datasets export` and loaded back with `datasets` (the folder route and
# `load_dataset("parquet", data_files=...)`).
#
# The clean environment holds the wheel and nothing of the checkout; its other packages (torch and its CUDA
# libraries are several GB) are borrowed from the project environment (scripts/borrow_site_packages.py), except
# this package. Everything runs offline in a temporary folder, removed at the end (KEEP=1 keeps it).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${VENV:-.venv}
PYTHON=$ROOT/$VENV/bin/python
WORK=$(mktemp -d -t diffii-wheel-check-XXXXXX)
if [ "${KEEP:-0}" = 1 ]; then echo "keeping $WORK"; else trap 'rm -rf "$WORK"' EXIT; fi
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 PIP_NO_INDEX=1
export HF_HOME=$WORK/hf-home PIP_DISABLE_PIP_VERSION_CHECK=1 HF_DATASETS_DISABLE_PROGRESS_BARS=1

echo "== building the wheel from a copy of the sources"
mkdir "$WORK/source"
cp pyproject.toml setup.cfg README.md LICENSE "$WORK/source/"
cp -R hub_cards "$WORK/source/"
cp -R diffii_datasets "$WORK/source/"  # diffii_datasets/hub_cards stays a link to ../hub_cards
find "$WORK/source" -name __pycache__ -prune -exec rm -rf {} +
"$PYTHON" -m pip wheel "$WORK/source" --no-deps --no-build-isolation --quiet --wheel-dir "$WORK/dist"
WHEEL=$(ls "$WORK"/dist/diffii_datasets-*.whl)
echo "built $(basename "$WHEEL")"

echo "== installing it in a clean environment"
# Without pip or setuptools of its own (they would shadow the borrowed ones): the project's pip installs into it.
"$("$PYTHON" -c 'import sys; print(sys._base_executable)')" -m venv --without-pip "$WORK/venv"
"$PYTHON" scripts/borrow_site_packages.py "$VENV" "$WORK/venv" --all-but diffii-datasets > "$WORK/borrowed.txt"
echo "borrowed $(tr ',' '\n' < "$WORK/borrowed.txt" | wc -l) installed distributions from $VENV (not this package)"
"$PYTHON" -m pip --python "$WORK/venv/bin/python" install --quiet --no-deps "$WHEEL"
"$PYTHON" -m pip --python "$WORK/venv/bin/python" check

echo "== using it from $WORK/run, outside the checkout"
mkdir "$WORK/run"
cd "$WORK/run"
BIN=$WORK/venv/bin
"$BIN/diffii-datasets" --version
"$BIN/diffii-datasets" demo --output-dir demo --denoising-steps 2 --concept-train-steps 2 --expansion-rate 1 --quiet \
    | tee demo.txt
STORE=$(sed -n 's/^store: \(.*\) ([0-9]* synthetic images)$/\1/p' demo.txt)
"$BIN/diffii-datasets" export "$STORE" export --config-name shapes-demo
"$BIN/python" - "$WORK" "$STORE" <<'EOF'
import sys
from pathlib import Path

import datasets
from huggingface_hub import DatasetCard

import diffii_datasets
from diffii_datasets import SyntheticStore
from diffii_datasets.hf import cards_dir, diffii_features

work, store = Path(sys.argv[1]).resolve(), SyntheticStore.open(sys.argv[2])
package = Path(diffii_datasets.__file__).resolve().parent
assert package.is_relative_to(work / "venv"), f"diffii_datasets imported from {package}, not the installed wheel"
print(f"diffii_datasets {diffii_datasets.__version__} imported from {package}")
templates = sorted(path.name for path in cards_dir().glob("*.md"))
assert cards_dir().resolve().is_relative_to(work / "venv") and "generic.md" in templates, (cards_dir(), templates)
print(f"card templates found inside the installed package: {', '.join(templates)}")

features = diffii_features(store.header.classes)
counts = {"train": sum(store.header.real_counts), "synthetic": sum(store.header.expected_counts)}
folder = datasets.load_dataset("export", "shapes-demo", cache_dir=str(work / "load-folder"))
parquet = datasets.load_dataset("parquet", cache_dir=str(work / "load-parquet"), data_files={
    split: sorted(str(path) for path in Path("export/data/shapes-demo").glob(f"{split}-*.parquet")) for split in counts})
for route, loaded in (("load_dataset(folder, config)", folder), ('load_dataset("parquet", data_files=...)', parquet)):
    assert {split: len(loaded[split]) for split in loaded} == counts, (route, loaded)
    assert all(loaded[split].features == features for split in loaded), route
    print(f"{route}: " + ", ".join(f"{split} {len(loaded[split])} rows" for split in loaded) + ", Diff-II features")
card = DatasetCard.load("export/README.md")
assert "license" not in card.data.to_dict() and card.data.diffii[0]["family"] == "generic"
print(f"card: {card.data.pretty_name!r}, generic template, no licence claimed")
EOF
echo "check-wheel: OK"
