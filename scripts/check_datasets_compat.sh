#!/usr/bin/env bash
# `make check-datasets-compat`: an export written with this environment's `datasets` (5.x) is read back, row for
# row, by older `datasets` versions (default 3.0.0 and 3.6.0), through both routes:
#   datasets.load_dataset("<export folder>", "<config>")                 (the README's configs)
#   datasets.load_dataset("parquet", data_files={split: [files]})        (the Parquet files alone)
# A control export written with datasets' own Dataset.to_parquet must fail the Parquet route on 3.x (its schema
# records list columns as {"_type": "List"}, unknown before datasets 4), so the check shows it can fail.
#
# Each version gets a small virtual environment with only datasets and Pillow (no torch), installed from the package
# index, under build/datasets-compat/ (kept for the next run). Variables: VENV, DATASETS_VERSIONS.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
VERSIONS=${DATASETS_VERSIONS:-3.0.0 3.6.0}
WORK=$PWD/build/datasets-compat
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 PIP_DISABLE_PIP_VERSION_CHECK=1
export HF_DATASETS_DISABLE_PROGRESS_BARS=1
rm -rf "$WORK/run" && mkdir -p "$WORK/run"
CONFIG=shapes-demo

# What each environment prints: for each route and split, the row count and a digest of every row
# (label, provenance, image bytes), so two versions agree only when they read the same rows.
cat > "$WORK/run/read.py" <<'EOF'
import hashlib
import json
import sys
from pathlib import Path

import datasets

folder, config, route = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
cache = str(folder.parent / f"cache-{datasets.__version__}-{route}")
if route == "folder":
    loaded = datasets.load_dataset(str(folder), config, cache_dir=cache)
else:
    files = {split: sorted(str(p) for p in (folder / "data" / config).glob(f"{split}-*.parquet"))
             for split in ("train", "synthetic")}
    loaded = datasets.load_dataset("parquet", data_files=files, cache_dir=cache)
summary = {}
for split in sorted(loaded):
    rows = loaded[split].cast_column("image", datasets.Image(decode=False))
    digest = hashlib.sha256()
    for row in rows:
        row["image"] = hashlib.sha256(row["image"]["bytes"]).hexdigest()
        digest.update(json.dumps(row, sort_keys=True).encode())
    names = loaded[split].features["label"].names
    summary[split] = {"rows": len(rows), "digest": digest.hexdigest()[:16], "classes": names,
                      "source_indices": str(loaded[split].features["source_indices"])}
print(json.dumps(summary, sort_keys=True))
EOF

echo "== an export written with $("$VENV/bin/python" -c 'import datasets; print("datasets", datasets.__version__)')"
"$VENV/bin/diffii-datasets" demo --output-dir "$WORK/run/demo" --denoising-steps 2 --concept-train-steps 2 \
    --expansion-rate 1 --quiet > "$WORK/run/demo.txt"
STORE=$(sed -n 's/^store: \(.*\) ([0-9]* synthetic images)$/\1/p' "$WORK/run/demo.txt")
"$VENV/bin/diffii-datasets" export "$STORE" "$WORK/run/export" --config-name "$CONFIG" > /dev/null
"$VENV/bin/python" - "$STORE" "$WORK/run/control" "$CONFIG" <<'EOF'
import sys
from pathlib import Path

from diffii_datasets.hf import to_dataset_dict

store, folder, config = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
(folder / "data" / config).mkdir(parents=True)
for split, dataset in to_dataset_dict(store, cache_dir=folder / "cache").items():
    dataset.to_parquet(str(folder / "data" / config / f"{split}-00000-of-00001.parquet"))  # datasets' own writer
EOF
for route in folder parquet; do
    "$VENV/bin/python" "$WORK/run/read.py" "$WORK/run/export" "$CONFIG" "$route" > "$WORK/run/expected-$route.json"
done
echo "read back by the writing version: $(cat "$WORK/run/expected-parquet.json")"

status=0
for version in $VERSIONS; do
    env_dir=$WORK/venv-datasets-$version
    if [ ! -x "$env_dir/bin/python" ]; then
        "$("$VENV/bin/python" -c 'import sys; print(sys._base_executable)')" -m venv "$env_dir"
        "$env_dir/bin/python" -m pip install --quiet "datasets==$version" pillow
    fi
    for route in folder parquet; do
        if got=$("$env_dir/bin/python" "$WORK/run/read.py" "$WORK/run/export" "$CONFIG" "$route" 2>"$WORK/run/err.txt"); then
            if [ "$(echo "$got" | sed 's/"source_indices": "[^"]*"//g')" = \
                 "$(sed 's/"source_indices": "[^"]*"//g' "$WORK/run/expected-$route.json")" ]; then
                echo "datasets $version, $route route: same rows as the writing version ($got)"
            else
                echo "datasets $version, $route route: DIFFERENT rows: $got"; status=1
            fi
        else
            echo "datasets $version, $route route: FAILED: $(tail -1 "$WORK/run/err.txt")"; status=1
        fi
    done
    if "$env_dir/bin/python" "$WORK/run/read.py" "$WORK/run/control" "$CONFIG" parquet > /dev/null 2>"$WORK/run/err.txt"; then
        echo "datasets $version, control written by Dataset.to_parquet: read (expected to fail on datasets < 4)"
    else
        echo "datasets $version, control written by Dataset.to_parquet: fails as expected: $(tail -1 "$WORK/run/err.txt")"
    fi
done
[ "$status" = 0 ] && echo "check-datasets-compat: OK"
exit "$status"
