#!/usr/bin/env bash
# The device check in one command on a CUDA machine: build the environment when it is missing, then run
# benchmarks/device_check.py (figures into OUT_DIR/device_check.json and .md, its output into device_check.log).
#
#   benchmarks/device_check.sh OUT_DIR [--budget SECONDS] [--sections a,b] [--dry-run]
#
# The environment is $VENV (default .venv), made with $PYTHON (default python3):
# - as `make install` makes it (pip install -c constraints.txt -e ".[test,quality]") where a package index is
#   reachable;
# - on a machine without one (a lent GPU, whose python3 already holds torch and most dependencies), when a
#   folder .whl/ of wheels was brought along: the venv sees $PYTHON's packages (a .pth file), adds the wheels
#   (what that machine lacks: diffusers) and this checkout (a .pth file: an editable install that needs no
#   build tools), all without reaching an index.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 1 ] || [[ "$1" == -* ]]; then
    echo "usage: benchmarks/device_check.sh OUT_DIR [device_check.py options]" >&2
    exit 2
fi
out="$1"
shift
python="${PYTHON:-python3}"
venv="${VENV:-.venv}"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 PYTHONUNBUFFERED=1

if ! { [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import diffii_datasets, diffusers" 2>/dev/null; }; then
    if compgen -G ".whl/*.whl" >/dev/null; then
        echo "device_check.sh: no package index assumed (.whl/ present): $venv over $python's packages" >&2
        test -x "$venv/bin/python" || "$python" -m venv --without-pip "$venv"
        site_packages=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
        "$python" -c 'import site; print("\n".join(site.getsitepackages()))' >"$site_packages/_base_packages.pth"
        pwd >"$site_packages/_diffii_checkout.pth"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-index --no-deps \
            --ignore-installed --no-compile .whl/*.whl
    else
        test -x "$venv/bin/python" || "$python" -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test,quality]"
    fi
fi

mkdir -p "$out"
set +e
"$venv/bin/python" benchmarks/device_check.py "$out" "$@" 2>&1 | tee "$out/device_check.log"
status=${PIPESTATUS[0]}
set -e
exit "$status"
